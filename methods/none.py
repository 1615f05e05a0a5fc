"""No balancing: plain BCE-with-logits (multi-label) or cross-entropy (single-label); the baseline of every table."""
from benchmark import Method, register_method


@register_method
class NoBalancing(Method):
    """The baseline: natural sampling, unweighted loss, raw logits."""

    name = "none"
    paper = "baseline"
