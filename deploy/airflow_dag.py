"""An Airflow DAG that runs consentgate once a day for the day's partition.

The task calls the CLI, as cron would, and maps its documented exit codes
(docs/run-contract.md) onto Airflow's retry rules: 4 (the run failed: I/O, runner), 5 (the
day's input has not landed yet) and 6 (interrupted by SIGINT or SIGTERM) are retried; 2 (usage,
config, or another run holds the partition's lock) and 3 (the leak gate failed) are not, since
retrying cannot fix them and a failed gate needs a person. Paths come from the config's schedule templates, filled with the
run's logical date. The key reaches the worker as an environment variable from a secrets
backend, never through the DAG file.

Copy to your DAGs folder and set CONSENTGATE_HOME, CONSENTGATE_BIN and the config path.
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta

from airflow import DAG
from airflow.exceptions import AirflowException, AirflowFailException
from airflow.operators.python import PythonOperator

CONSENTGATE = os.environ.get("CONSENTGATE_BIN", "/srv/consentgate/.venv/bin/consentgate")
CONFIG = os.environ.get("CONSENTGATE_SCHEDULE_CONFIG", "/etc/consentgate/schedule.json")
RETRYABLE = {4, 5, 6}


def command(day: str) -> list[str]:
    """The CLI call for one day's partition."""
    return [CONSENTGATE, "run", "--config", CONFIG, "--date", day, "--quiet"]


def run_day(ds: str, **_: object) -> None:
    done = subprocess.run(command(ds), capture_output=True, text=True)
    if done.returncode == 0:
        return
    message = f"consentgate exited {done.returncode}: {done.stderr.strip()[-2000:]}"
    if done.returncode in RETRYABLE:
        raise AirflowException(message)  # retried per the task's retries
    raise AirflowFailException(message)  # fails at once, no retry


with DAG(
    dag_id="consentgate_daily",
    start_date=datetime(2026, 11, 1),
    schedule="30 2 * * *",
    catchup=True,  # a backfill is Airflow catching up, one partition per run, in order
    max_active_runs=1,  # one run per partition at a time; the lock refuses a second anyway
    default_args={"retries": 3, "retry_delay": timedelta(minutes=10)},
) as dag:
    PythonOperator(task_id="consentgate_run", python_callable=run_day)
