"""Jobs: automations whose steps run other automations (`builtin.run_automation`),
and the rule that a job never starts itself."""

from .models import Automation

# the action of a job's step: it starts a child run of another automation
RUN_AUTOMATION = "builtin.run_automation"


def _children_of(steps) -> list[tuple[int, str]]:
    """(step index, slug) of the automations a job's steps run."""
    return [
        (i, step["parameters"].get("automation"))
        for i, step in enumerate(steps)
        if step["action"] == RUN_AUTOMATION
    ]


def _version_children(automation: Automation) -> list[str]:
    version = automation.latest_version()
    if version is None:
        return []
    return [
        step.parameters.get("automation")
        for step in version.steps.filter(action=RUN_AUTOMATION).order_by("order")
    ]


def job_problem(slug: str, steps: list[dict]) -> str:
    """What is wrong with the job steps of definition `slug` ("" when nothing): a
    job that starts itself, directly or through another job, is refused; so is one
    that runs an automation that does not exist. The graph is the latest version of
    every automation, these steps in place of `slug`'s own."""
    for index, child in _children_of(steps):
        path = f"steps[{index}] ({steps[index]['name']})"
        if child != slug and not Automation.objects.filter(slug=child).exists():
            return (
                f"{path}.parameters.automation: no automation {child!r} "
                "(import it before the job that runs it)"
            )
        # depth-first from the child: reaching `slug` again is a cycle
        trail, stack, seen = {child: [slug, child]}, [child], set()
        while stack:
            current = stack.pop()
            if current == slug:
                return (
                    f"{path}.parameters.automation: a cycle: "
                    f"{' → '.join(trail[current])} (a job may not start itself, "
                    "directly or through another job)"
                )
            if current in seen:
                continue
            seen.add(current)
            automation = Automation.objects.filter(slug=current).first()
            for nxt in _version_children(automation) if automation else []:
                if nxt not in trail or nxt == slug:
                    trail[nxt] = [*trail[current], nxt]
                stack.append(nxt)
    return ""
