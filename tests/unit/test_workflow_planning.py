"""domain/workflows.py: step checks, cycle detection, topological order, the planned jobs."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blixard.domain.jobs import JobSpec
from blixard.domain.workflows import (
    MAX_STEPS,
    Step,
    WorkflowPlan,
    plan_workflow,
    step_field,
    topological_order,
)
from blixard.errors import ValidationError

SPEC = JobSpec.build({"command": "true"})


def step(name: str, *depends_on: str, after: Sequence[str] = (), spec: JobSpec = SPEC) -> Step:
    return Step(name, spec, tuple(depends_on), tuple(after))


def plan(*steps: Step, tenant: str | None = None) -> WorkflowPlan:
    ids = [f"job-{i}" for i in range(len(steps))]
    return plan_workflow(steps, group_id="wf", job_ids=ids, tenant=tenant)


def names(p: WorkflowPlan) -> list[str]:
    return [s.name for s in p.steps]


def refused(*steps: Step) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        plan(*steps)
    return info.value


# -- order --------------------------------------------------------------------------------


def test_steps_given_in_a_valid_order_keep_it() -> None:
    p = plan(step("a"), step("b", "a"), step("c"), step("d", "b", "c"))
    assert names(p) == ["a", "b", "c", "d"]


def test_parents_come_first_and_ties_go_to_the_step_given_first() -> None:
    p = plan(step("deploy", "test", "lint"), step("test", "build"), step("lint"), step("build"))
    # Ready at first: lint and build (lint given first); then test, then deploy.
    assert names(p) == ["lint", "build", "test", "deploy"]


def test_independent_steps_keep_the_given_order() -> None:
    assert names(plan(step("z"), step("y"), step("x"))) == ["z", "y", "x"]


def test_jobs_carry_step_group_and_parent_job_ids_in_order() -> None:
    p = plan(step("c", "b", "a", "b"), step("a"), step("b", "a", after=["old-1", "old-1"]))
    assert names(p) == ["a", "b", "c"]
    # Ids are handed out in topological order: time-ordered ids sort parents first.
    assert [s.job_id for s in p.steps] == ["job-0", "job-1", "job-2"]
    a, b, c = p.steps
    assert a.spec.depends_on == ()
    assert b.spec.depends_on == ("job-0", "old-1")
    assert c.spec.depends_on == ("job-1", "job-0")  # as named, duplicates dropped
    assert [s.spec.step for s in p.steps] == ["a", "b", "c"]
    assert {s.spec.group_id for s in p.steps} == {"wf"}
    assert p.group_id == "wf"
    assert p.specs == [s.spec for s in p.steps]
    assert b.parent_fields == ("depends_on[0]", "after[0]")
    assert c.parent_fields == ("depends_on[0]", "depends_on[1]")


def test_a_diamond() -> None:
    p = plan(
        step("top"), step("left", "top"), step("right", "top"), step("bottom", "left", "right")
    )
    assert names(p) == ["top", "left", "right", "bottom"]
    assert p.steps[3].spec.depends_on == ("job-1", "job-2")


# -- cycles -------------------------------------------------------------------------------


def test_a_step_depending_on_itself_is_a_cycle_of_one() -> None:
    exc = refused(step("ok"), step("a", "a"))
    assert exc.field == "steps"
    assert exc.message == "steps: cycle a -> a (each step depends on the next)"
    assert exc.details["cycle"] == ["a", "a"]


def test_a_cycle_of_two() -> None:
    exc = refused(step("a", "b"), step("b", "a"))
    assert exc.message == "steps: cycle a -> b -> a (each step depends on the next)"
    assert exc.details["cycle"] == ["a", "b", "a"]


def test_a_cycle_of_three_is_named_from_its_step_given_first() -> None:
    exc = refused(step("start"), step("c", "a"), step("b", "c"), step("a", "b", "start"))
    assert exc.details["cycle"] == ["c", "a", "b", "c"]
    assert "cycle c -> a -> b -> c" in exc.message


def test_steps_downstream_of_a_cycle_are_not_part_of_it() -> None:
    exc = refused(step("after", "x"), step("x", "y"), step("y", "x"))
    assert exc.details["cycle"] == ["x", "y", "x"]


# -- bad steps ----------------------------------------------------------------------------


def test_an_unknown_step_is_named_with_its_position() -> None:
    exc = refused(step("build"), step("test", "build", "compile"))
    assert exc.field == "steps.test.depends_on[1]"
    assert "unknown step 'compile'" in exc.message


def test_duplicate_names() -> None:
    exc = refused(step("build"), step("test"), step("build"))
    assert exc.field == "steps[2].name"
    assert "duplicate step name 'build' (also steps[0])" in exc.message


@pytest.mark.parametrize("name", ["", "has space", "-dash-first", "x" * 65])
def test_invalid_names(name: str) -> None:
    assert refused(step("ok"), step(name)).field == "steps[1].name"


def test_no_steps_and_too_many_steps() -> None:
    assert refused().field == "steps"
    many = [step(f"s{i}") for i in range(MAX_STEPS + 1)]
    exc = refused(*many)
    assert exc.field == "steps"
    assert f"at most {MAX_STEPS} steps" in exc.message
    assert len(plan(*many[:MAX_STEPS]).steps) == MAX_STEPS


def test_a_bad_after_id() -> None:
    exc = refused(step("a", after=["ok", ""]))
    assert exc.field == "steps.a.after[1]"


def test_every_step_is_in_the_workflows_tenant() -> None:
    other = JobSpec.build({}, tenant="acme")
    with pytest.raises(ValidationError) as info:
        plan(step("a"), step("b", spec=other))
    assert info.value.field == "steps[1].tenant"
    assert names(plan(step("a", spec=other), step("b", spec=other))) == ["a", "b"]
    with pytest.raises(ValidationError) as info:
        plan(step("a", spec=other), tenant="default")
    assert info.value.field == "steps[0].tenant"


def test_a_step_cannot_name_another_group() -> None:
    grouped = JobSpec.build({}, group_id="elsewhere")
    with pytest.raises(ValidationError) as info:
        plan(step("a"), step("b", spec=grouped))
    assert info.value.field == "steps[1].group_id"


def test_job_ids_must_match_the_steps() -> None:
    with pytest.raises(ValueError, match="job ids"):
        plan_workflow([step("a")], group_id="wf", job_ids=[])


# -- store fields in step terms -----------------------------------------------------------


def test_store_fields_are_named_by_step() -> None:
    p = plan(step("b", "a", after=["old"]), step("a"))
    assert step_field(p, "jobs[1].depends_on[0]") == "steps.b.depends_on[0]"
    assert step_field(p, "jobs[1].depends_on[1]") == "steps.b.after[0]"
    assert step_field(p, "jobs[0].payload") == "steps.a.payload"
    assert step_field(p, "jobs[7].payload") == "jobs[7].payload"
    assert step_field(p, "tenant") == "tenant"
    single = plan(step("only", after=["x", "y"]))
    assert step_field(single, "depends_on[1]") == "steps.only.after[1]"


# -- properties ---------------------------------------------------------------------------


@st.composite
def graphs(draw: st.DrawFn) -> list[list[int]]:
    n = draw(st.integers(1, 25))
    return [sorted(set(draw(st.lists(st.integers(0, n - 1), max_size=4)))) for _ in range(n)]


@given(graphs())
def test_the_order_respects_every_edge_or_the_cycle_is_real(parents: list[list[int]]) -> None:
    order, cycle = topological_order(parents)
    if not cycle:
        assert sorted(order) == list(range(len(parents)))
        position = {node: i for i, node in enumerate(order)}
        for child, ps in enumerate(parents):
            assert all(position[p] < position[child] for p in ps)
    else:
        assert cycle[0] == cycle[-1]
        assert cycle[0] == min(cycle)
        assert len(set(cycle[:-1])) == len(cycle) - 1
        for child, parent in itertools.pairwise(cycle):
            assert parent in parents[child]
