"""`airflow triggerer`, started so that one trigger that cannot be built fails its own task, not the triggerer.

Airflow 3.3's trigger runner catches only a TypeError while building a trigger from its row: any other error —
typically an `auth_type` an HttpTrigger imports by its dotted path from a module only the workers can import —
ends the runner ("Trigger runner process has died! Exiting."), and the row left in the metastore ends every later
triggerer start: the sandbox's Airflow is wedged until someone deletes it by hand. Here each trigger class is
wrapped so that such an error becomes the TypeError the runner already handles: that trigger fails (its task
fails with the sentence below, naming the trigger and the error), and the runner goes on serving the others.

A trigger that fails while being built is also forgotten by the triggerer's supervisor: 3.3.2 keeps its id in
the set of running triggers for good, and as SQLite hands a deleted row's id to the next trigger, the next
deferred task (a retry, typically) would wait forever for a trigger the supervisor believes it runs.

Run as `python -m sandbox_triggerer [triggerer options]`; the runner is forked from this process, so the wrap
is in place there.
"""

from __future__ import annotations

import sys
from collections import deque


class TriggerNotBuilt(TypeError):
    """A TypeError because that is what Airflow's runner turns into a failed trigger instead of dying."""


def guarded(trigger_class, classpath: str, owner: str = ""):
    """`owner`: the task the trigger is built for ("DAG.task, run …"), when the runner says."""

    def build(**kwargs):
        try:
            return trigger_class(**kwargs)
        except TypeError:
            raise
        except Exception as e:  # noqa: BLE001 - any error while building one trigger fails that trigger only
            raise TriggerNotBuilt(
                f"the triggerer could not build {classpath}: {type(e).__name__}: {e} ("
                + (f"for {owner}; " if owner else "") + "the triggerer imports what the trigger names, such as an "
                "auth_type, by its dotted path: keep it in a module every Airflow process can import, not in the "
                "DAG folder)") from e

    build.__name__ = build.__qualname__ = getattr(trigger_class, "__name__", "trigger")
    return build


class Remembering(deque):
    """The runner's queue of triggers to build, noting on the runner the one taken last."""

    def __init__(self, items, runner):
        super().__init__(items)
        self.runner = runner

    def popleft(self):
        item = super().popleft()
        self.runner.sandbox_building = item
        return item


def owner_of(workload) -> str:
    ti = getattr(workload, "ti", None)
    if ti is None:
        return ""
    return f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}, run {getattr(ti, 'run_id', '?')}"


def install() -> None:
    from airflow.jobs.triggerer_job_runner import TriggerRunner, TriggerRunnerSupervisor

    original = TriggerRunner.get_trigger_by_classpath
    if getattr(original, "sandbox_guarded", False):
        return
    handle_failed = TriggerRunnerSupervisor.handle_failed_triggers

    def handle_failed_triggers(self):
        for trigger_id, _ in self.failed_triggers:  # failed: not running, whatever stage it failed in
            self.running_triggers.discard(trigger_id)
            self.cancelling_triggers.discard(trigger_id)
        handle_failed(self)

    TriggerRunnerSupervisor.handle_failed_triggers = handle_failed_triggers

    def get_trigger_by_classpath(self, classpath: str):
        # the runner caches the class itself; it is wrapped afresh for each trigger, naming that trigger's task
        return guarded(original(self, classpath), classpath, owner_of(getattr(self, "sandbox_building", None)))

    get_trigger_by_classpath.sandbox_guarded = True
    TriggerRunner.get_trigger_by_classpath = get_trigger_by_classpath

    # the runner builds each trigger right after taking its workload off `to_create`: remember which it took
    create_triggers = TriggerRunner.create_triggers

    async def create_triggers_naming_the_task(self):
        if not isinstance(self.to_create, Remembering):
            self.to_create = Remembering(self.to_create, self)
        await create_triggers(self)

    TriggerRunner.create_triggers = create_triggers_naming_the_task


def main() -> None:
    install()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "triggerer", *sys.argv[1:]]
    airflow_main()


if __name__ == "__main__":
    main()
