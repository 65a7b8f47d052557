"""The helpers that turn Kedro parameter groups into the frozen config dataclasses."""

from dataclasses import dataclass

import pytest
from omegaconf import OmegaConf

from embedding_distillation.params import from_params, layer_list


@dataclass(frozen=True)
class _Group:
    name: str
    size: int = 1


def test_from_params_builds_the_dataclass_with_its_defaults():
    assert from_params(_Group, {"name": "x"}, group="g") == _Group(name="x", size=1)
    assert from_params(_Group, {"name": "x", "size": 3}, group="g").size == 3


def test_from_params_names_unknown_keys_and_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"Unknown key\(s\) \['sise'\] in the 'g' parameters\. Valid keys: \['name', 'size'\]",
    ):
        from_params(_Group, {"name": "x", "sise": 3}, group="g")


def _from_command_line(item: str) -> object:
    """What ``kedro run --params <item>`` hands over (Kedro parses it with OmegaConf)."""
    key, _, _ = item.partition("=")
    value = OmegaConf.to_container(OmegaConf.from_dotlist([item]))
    for part in key.split("."):
        value = value[part]  # type: ignore[index]
    return value


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([6, 0, 12], (6, 0, 12)),
        ((1, 3), (1, 3)),
        ("6 0 12", (6, 0, 12)),
        ("99", (99,)),
        (99, (99,)),
        (_from_command_line("teacher_embeddings.layer_indices=99"), (99,)),
        (_from_command_line("distillation.student_init=0 2 4"), (0, 2, 4)),
    ],
)
def test_layer_list_reads_lists_single_numbers_and_space_separated_numbers(given, expected):
    assert layer_list(given) == expected


@pytest.mark.parametrize("given", ["every other", "", True, 1.5, None, {"a": 1}])
def test_layer_list_leaves_anything_else_for_the_config_to_explain(given):
    assert layer_list(given) == given


def test_a_lone_number_on_the_command_line_arrives_as_an_int():
    """Why ``layer_list`` takes an int: the bug was ``'int' object is not iterable``."""
    assert _from_command_line("teacher_embeddings.layer_indices=99") == 99
    assert _from_command_line("teacher_embeddings.layer_indices=6 12") == "6 12"
