"""Registries and parameter specs: lookups, globbing, errors that list the valid names, typed validation."""
import pytest

from benchmark import UserError, get_method, get_task, list_methods, list_tasks, load_plugin
from benchmark.params import Param, parse_spec, resolve_params, split_specs


def test_core_methods_and_tasks_are_registered():
    assert {"none", "oversample", "class_weighted", "focal"} <= set(list_methods())
    assert {"synth-multilabel", "synth-singlelabel"} <= set(list_tasks())
    assert list_methods("focal*") == [n for n in list_methods() if n.startswith("focal")]
    assert list_methods("nothing-matches*") == []


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UserError) as e:
        get_method("oversampel")
    assert "Did you mean 'oversample'" in str(e.value) and "class_weighted" in str(e.value)
    with pytest.raises(UserError, match="unknown task 'nope'.*synth-multilabel"):
        get_task("nope")


@pytest.mark.parametrize("spec,msg", [
    ("oversample:beta=-1", "must be >= 0"),
    ("oversample:beta=abc", "must be float"),
    ("oversample:beta=nan", "finite"),
    ("oversample:aggregate=median", "must be one of max, sum, mean"),
    ("oversample:gamma=2", "unknown parameter 'gamma'.*beta"),
    ("oversample:beta", "write key=value"),
    ("synth-multilabel:classes=2.5", "must be an integer"),
])
def test_bad_parameters_are_one_line_errors(spec, msg):
    with pytest.raises(UserError, match=msg):
        (get_task if spec.startswith("synth") else get_method)(spec)


def test_parameters_are_typed_and_defaulted():
    m = get_method("oversample:beta=1")
    assert m.beta == 1.0 and isinstance(m.beta, float) and m.aggregate == "max"
    assert get_method("oversample", beta=0.25).hparams == {"beta": 0.25, "aggregate": "max"}
    assert get_method("focal:alpha=none").alpha is None
    assert get_method("focal:alpha=0.25").alpha == 0.25
    assert get_task("synth-multilabel:classes=7").num_classes == 7


def test_spec_parsing_and_splitting():
    assert parse_spec("oversample:beta=0.5,aggregate=sum") == ("oversample", {"beta": "0.5", "aggregate": "sum"})
    assert split_specs(["oversample:beta=0.5,aggregate=sum,focal", "none"]) == [
        "oversample:beta=0.5,aggregate=sum", "focal", "none"]
    assert split_specs(["oversample,class_weighted,focal"]) == ["oversample", "class_weighted", "focal"]


def test_bool_and_choice_params():
    specs = {"flag": Param(bool, False), "k": Param(int, 3, min=1)}
    assert resolve_params("x", specs, {"flag": "yes", "k": "4"}) == {"flag": True, "k": 4}
    with pytest.raises(UserError, match="must be bool"):
        resolve_params("x", specs, {"flag": "maybe"})


def test_plugin_file_registers_a_method(tmp_path):
    f = tmp_path / "my_method.py"
    f.write_text(
        "from benchmark import Method, register_method\n"
        "@register_method\n"
        "class Mine(Method):\n"
        "    '''A test plugin.'''\n"
        "    name = 'plugin-test-method'\n")
    load_plugin(f)
    assert "plugin-test-method" in list_methods()
    with pytest.raises(UserError, match="no such file"):
        load_plugin(tmp_path / "missing.py")
