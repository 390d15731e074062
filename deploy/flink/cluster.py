"""A Flink session cluster on this machine for the job: `up`, `down`, `status`.

`make flink-up` / `make flink-down` call this with the project's .venv python. The cluster lives
under one folder (`.flink/`, or $CONSENTGATE_FLINK_DIR): the config in conf/, pid files in run/,
logs in log/, Flink's scratch files in tmp/. The downloads (the apache-flink-libraries sdist, the
Flink jars unpacked from it, the job server's jars) go to a cache shared by every clone on the
machine ($CONSENTGATE_FLINK_CACHE, default ~/.cache/consentgate/flink), so a fresh clone (CI's)
does not fetch 230 MB again. `up` starts what is not running and leaves the rest alone; `down`
stops what `up` started (by the pids it wrote) and is a no-op when nothing runs.

Processes: one JobManager, two TaskManagers (one slot each) and Beam's Flink job server. Each
TaskManager starts its Python SDK workers itself (`--environment_type=PROCESS`, with `.flink/boot`,
see boot.py); they inherit the TaskManager's environment, which is the environment of `up`: that
is how CONSENTGATE_PSEUDONYM_KEY reaches the workers (never through pipeline options or the job
graph). `up` refuses to start without it, and restarts TaskManagers that were started with
another key (compared by a fingerprint kept in run/).

Stdlib only: this runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("CONSENTGATE_FLINK_DIR", ROOT / ".flink")).resolve()
_XDG_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
CACHE = Path(
    os.environ.get("CONSENTGATE_FLINK_CACHE") or _XDG_CACHE / "consentgate" / "flink"
).resolve()

# Flink comes from PyPI's apache-flink-libraries sdist (it ships Flink's lib/ jars). Beam's Flink
# job server comes from Maven Central: the newest beam-runners-flink-1.19 whose dependencies all
# resolve there is 2.62.0 (later ones need beam-runners-java-job-service versions that are not
# served), so the job server is 2.62.0 while the Python SDK is the project's 2.77.
FLINK_VERSION = os.environ.get("FLINK_VERSION", "1.19.3")
BEAM_JAVA_VERSION = os.environ.get("BEAM_JAVA_VERSION", "2.62.0")
FLINK_MINOR = ".".join(FLINK_VERSION.split(".")[:2])

PORTS = {
    "rest": int(os.environ.get("FLINK_REST_PORT", "18081")),
    "rpc": int(os.environ.get("FLINK_RPC_PORT", "16123")),
    "job": int(os.environ.get("FLINK_JOB_PORT", "18099")),
    "artifact": int(os.environ.get("FLINK_ARTIFACT_PORT", "18098")),
    "expansion": int(os.environ.get("FLINK_EXPANSION_PORT", "18097")),
}
TASK_MANAGERS = 2
KEY_ENV = "CONSENTGATE_PSEUDONYM_KEY"
JOBMANAGER_CLASS = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TASKMANAGER_CLASS = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
JOBSERVER_CLASS = "org.apache.beam.runners.flink.FlinkJobServerDriver"
BASH_UTILS_CLASS = "org.apache.flink.runtime.util.bash.BashJavaUtils"

CONFIG = {
    "jobmanager.rpc.address": "localhost",
    "jobmanager.rpc.port": PORTS["rpc"],
    "jobmanager.bind-host": "localhost",
    "taskmanager.bind-host": "localhost",
    "taskmanager.host": "localhost",
    "rest.address": "localhost",
    "rest.bind-address": "localhost",
    "rest.port": PORTS["rest"],
    # Bounded for a 2-core machine shared with the test suite: 1 + 2 x 2.5 GB of JVMs (and
    # 0.5 GB for the job server). The Beam job's many shuffles need more network buffers than
    # Flink's default tenth of the memory, and Beam's gRPC data plane direct memory (task
    # off-heap; 1M events ran out of it with Flink's default of none); the Python workers, not
    # Flink, hold the data, so managed memory (sorting, spilled to disk) gets less.
    "jobmanager.memory.process.size": "1g",
    "taskmanager.memory.process.size": "2560m",
    "taskmanager.memory.network.min": "256m",
    "taskmanager.memory.network.max": "256m",
    "taskmanager.memory.task.off-heap.size": "512m",
    "taskmanager.memory.managed.fraction": 0.1,
    "taskmanager.numberOfTaskSlots": 1,
    "parallelism.default": 2,
    # A lost TaskManager fails the job at once (the run exits 4, nothing is published; rerun it).
    "restart-strategy.type": "none",
    "heartbeat.interval": 2000,
    "heartbeat.timeout": 10000,
    "web.submit.enable": "false",
}


def _log(message: str) -> None:
    print(f"flink: {message}", file=sys.stderr, flush=True)


class ClusterError(Exception):
    pass


# ---- downloads -------------------------------------------------------------------------------


def flink_home() -> Path:
    return CACHE / f"flink-{FLINK_VERSION}"


def jobserver_dir() -> Path:
    return CACHE / f"jobserver-{BEAM_JAVA_VERSION}-flink-{FLINK_MINOR}"


def _partial(target: Path) -> Path:
    """A fresh scratch folder beside `target`, this process's own (clones may share the cache)."""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    return partial


def _move_into_place(partial: Path, target: Path) -> None:
    """`partial` becomes `target` in one rename; if another clone's `up` got there first, its
    copy is kept (it was complete when it was renamed) and ours is dropped."""
    try:
        partial.rename(target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(partial, ignore_errors=True)


def fetch_flink() -> Path:
    """Flink's lib/ jars from the apache-flink-libraries sdist, once."""
    home = flink_home()
    if (home / "lib" / f"flink-dist-{FLINK_VERSION}.jar").exists():
        return home
    cache = CACHE / "downloads"
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"apache-flink-libraries-{FLINK_VERSION}.tar.gz"
    if not sdist.exists():
        _log(f"downloading apache-flink-libraries {FLINK_VERSION} from PyPI (about 230 MB)")
        # Into a scratch folder first: a download cut short never sits where a later `up`
        # would take it for a whole one.
        scratch = _partial(sdist)
        _retried(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"apache-flink-libraries=={FLINK_VERSION}",
                "-d",
                str(scratch),
            ],
            "pip download apache-flink-libraries",
        )
        (scratch / sdist.name).replace(sdist)
        shutil.rmtree(scratch, ignore_errors=True)
    partial = _partial(home)
    prefix = f"apache-flink-libraries-{FLINK_VERSION}/deps/"
    wanted = (prefix + "lib/", prefix + "bin/bash-java-utils.jar")
    try:
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.startswith(wanted):
                    member.name = member.name[len(prefix) :]
                    tar.extract(member, partial, filter="data")
    except (OSError, tarfile.TarError, EOFError) as exc:
        sdist.unlink(missing_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
        raise ClusterError(
            f"{sdist} could not be unpacked ({exc}); it was removed: run `make flink-up` again "
            "to download it anew"
        ) from exc
    if not (partial / "lib" / f"flink-dist-{FLINK_VERSION}.jar").exists():
        raise ClusterError(f"{sdist} holds no deps/lib/flink-dist-{FLINK_VERSION}.jar")
    _move_into_place(partial, home)
    return home


def fetch_jobserver() -> Path:
    """Beam's Flink job server and its dependencies from Maven Central, once."""
    target = jobserver_dir()
    if (target / f"beam-runners-flink-{FLINK_MINOR}-{BEAM_JAVA_VERSION}.jar").exists():
        return target
    if shutil.which("mvn") is None:
        raise ClusterError("mvn is not installed: it fetches Beam's Flink job server")
    _log(f"fetching Beam's Flink {FLINK_MINOR} job server {BEAM_JAVA_VERSION} with mvn")
    partial = _partial(target)
    _retried(
        [
            "mvn",
            "-q",
            "-B",
            # Maven's own retries for a dropped connection, inside each of our attempts.
            "-Dmaven.wagon.http.retryHandler.count=3",
            "-f",
            str(ROOT / "deploy" / "flink" / "jobserver-pom.xml"),
            f"-Dbeam.version={BEAM_JAVA_VERSION}",
            f"-Dflink.minor={FLINK_MINOR}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ],
        "mvn dependency:copy-dependencies (Beam's Flink job server)",
    )
    _move_into_place(partial, target)
    return target


def _run(command: list[str], what: str, timeout: float = 600.0) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{what} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        raise ClusterError(f"{what} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def _retried(command: list[str], what: str, attempts: int = 3, timeout: float = 360.0) -> str:
    """`_run` for downloads: a network hiccup is retried (after 5 s, then 20 s). Three attempts
    of at most 6 minutes fit CI's 20 minutes for `make flink-up` (a whole first one takes
    about 1.5 minutes)."""
    for attempt in range(1, attempts + 1):
        try:
            return _run(command, what, timeout)
        except ClusterError as exc:
            if attempt == attempts:
                raise
            wait = 5 * 4 ** (attempt - 1)
            _log(f"{what}: attempt {attempt} of {attempts} failed, retrying in {wait} s ({exc})")
            time.sleep(wait)
    raise AssertionError("unreachable")


# ---- config ----------------------------------------------------------------------------------


def write_conf() -> Path:
    conf = HOME / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    tmp = HOME / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    settings = {**CONFIG, "io.tmp.dirs": str(tmp)}
    lines = [f"{k}: {json.dumps(v) if isinstance(v, str) else v}" for k, v in settings.items()]
    (conf / "config.yaml").write_text("\n".join(lines) + "\n")
    (conf / "log4j.properties").write_text(
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.file.ref = MainAppender\n"
        "appender.main.name = MainAppender\n"
        "appender.main.type = File\n"
        "appender.main.append = true\n"
        "appender.main.fileName = ${sys:log.file}\n"
        "appender.main.layout.type = PatternLayout\n"
        "appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n\n"
    )
    return conf


def _resource_params(home: Path, conf: Path, which: str) -> tuple[list[str], list[str]]:
    """JVM memory flags and dynamic properties, computed as Flink's start scripts do."""
    classpath = f"{home / 'bin' / 'bash-java-utils.jar'}:{home / 'lib'}/*"
    out = _run(
        ["java", "-cp", classpath, BASH_UTILS_CLASS, which, "--configDir", str(conf)],
        f"BashJavaUtils {which}",
    )
    lines = [
        line[len("BASH_JAVA_UTILS_EXEC_RESULT:") :]
        for line in out.splitlines()
        if line.startswith("BASH_JAVA_UTILS_EXEC_RESULT:")
    ]
    if not lines:
        raise ClusterError(f"BashJavaUtils {which} printed no result:\n{out}")
    jvm = lines[0].split()
    dynamic = lines[1].split() if len(lines) > 1 else []
    return jvm, dynamic


def _java_opts() -> list[str]:
    # The --add-opens/--add-exports Flink's default config passes to Java 17.
    opens = [
        "java.base/java.lang",
        "java.base/java.net",
        "java.base/java.io",
        "java.base/java.nio",
        "java.base/sun.nio.ch",
        "java.base/java.lang.reflect",
        "java.base/java.text",
        "java.base/java.time",
        "java.base/java.util",
        "java.base/java.util.concurrent",
        "java.base/java.util.concurrent.atomic",
        "java.base/java.util.concurrent.locks",
    ]
    exports = [
        "java.base/sun.net.util",
        "java.rmi/sun.rmi.registry",
        "java.security.jgss/sun.security.krb5",
    ]
    return [f"--add-opens={m}=ALL-UNNAMED" for m in opens] + [
        f"--add-exports={m}=ALL-UNNAMED" for m in exports
    ]


# ---- processes -------------------------------------------------------------------------------


def _pidfile(name: str) -> Path:
    return HOME / "run" / f"{name}.pid"


def pid_of(name: str) -> int | None:
    """The pid of a process `up` started, if it still runs (and is still ours)."""
    path = _pidfile(name)
    try:
        pid = int(path.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return None
    marker = path.read_text().split(maxsplit=1)[1].strip() if " " in path.read_text() else ""
    if marker and marker not in cmdline:
        return None
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return None if state == "Z" else pid


def _start(name: str, command: list[str], marker: str, env: dict[str, str] | None = None) -> None:
    if pid_of(name) is not None:
        return
    (HOME / "run").mkdir(parents=True, exist_ok=True)
    (HOME / "log").mkdir(parents=True, exist_ok=True)
    with open(HOME / "log" / f"{name}.out", "ab") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `down` stops it and its children
            env=env,
            cwd=HOME,
        )
    _pidfile(name).write_text(f"{proc.pid} {marker}\n")
    _log(f"started {name} (pid {proc.pid})")


def _stop(name: str, timeout: float = 20.0) -> None:
    pid = pid_of(name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_of(name) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_of(name) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        _log(f"stopped {name} (pid {pid})")
    _pidfile(name).unlink(missing_ok=True)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("localhost", port)) == 0


def overview() -> dict[str, object] | None:
    try:
        url = f"http://localhost:{PORTS['rest']}/overview"
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def _tails(names: list[str], lines: int = 25) -> str:
    """The last lines of each process's output and log file, for a failure message."""
    parts = []
    for name in names:
        for path in (HOME / "log" / f"{name}.out", HOME / "log" / f"{name}.log"):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} (last {len(text)} lines)\n" + "\n".join(text))
    return "\n".join(parts)


def _wait(what: str, ready, timeout: float, names: list[str]) -> None:
    """Poll `ready` until `timeout`; fail at once, with their logs, if a process `names` has
    died, and with their logs when the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        dead = [name for name in names if pid_of(name) is None]
        if dead:
            raise ClusterError(
                f"{', '.join(dead)} exited while waiting for {what}:\n{_tails(dead)}"
            )
        time.sleep(0.5)
    raise ClusterError(f"{what} not ready after {timeout:.0f} s:\n{_tails(names)}")


def _check_port_free(name: str, *ports: int) -> None:
    """Before starting `name`: its ports must not be held by a process `up` did not start."""
    if pid_of(name) is not None:
        return
    taken = [port for port in ports if _listening(port)]
    if taken:
        raise ClusterError(
            f"port {', '.join(map(str, taken))} (for {name}) is in use by another process: "
            "stop it, or choose other ports (FLINK_REST_PORT, FLINK_RPC_PORT, FLINK_JOB_PORT, "
            "FLINK_ARTIFACT_PORT, FLINK_EXPANSION_PORT)"
        )


def _key_fingerprint() -> str:
    key = os.environ.get(KEY_ENV, "")
    if len(key.encode()) < 32:  # the job refuses shorter keys (pipelines/rules/deidentify.py)
        raise ClusterError(
            f"{KEY_ENV} is not set (or shorter than 32 bytes): the TaskManagers hand their "
            "environment to the SDK workers, which read the pseudonymisation key from it. "
            f"Export {KEY_ENV} before `make flink-up`."
        )
    return hashlib.sha256(b"consentgate-flink-taskmanagers:" + key.encode()).hexdigest()[:16]


def up(timeout: float) -> None:
    fingerprint = _key_fingerprint()
    home = fetch_flink()
    jobserver = fetch_jobserver()
    conf = write_conf()
    # A running cluster started from another config (an older checkout's) is restarted.
    config_hash = hashlib.sha256((conf / "config.yaml").read_bytes()).hexdigest()[:16]
    started_with = HOME / "run" / "config.hash"
    if any(pid_of(name) for name in NAMES) and (
        not started_with.exists() or started_with.read_text().strip() != config_hash
    ):
        _log("the cluster runs with another config: restarting it")
        down()
    (HOME / "run").mkdir(parents=True, exist_ok=True)
    started_with.write_text(config_hash + "\n")
    lib = f"{home / 'lib'}/*"
    log = HOME / "log"
    java = _java_opts()

    _check_port_free("jobmanager", PORTS["rest"], PORTS["rpc"])
    _check_port_free("jobserver", PORTS["job"], PORTS["artifact"], PORTS["expansion"])
    jm_jvm, jm_dynamic = _resource_params(home, conf, "GET_JM_RESOURCE_PARAMS")
    _start(
        "jobmanager",
        [
            "java",
            *jm_jvm,
            *java,
            f"-Dlog.file={log / 'jobmanager.log'}",
            f"-Dlog4j.configurationFile=file:{conf / 'log4j.properties'}",
            "-cp",
            lib,
            JOBMANAGER_CLASS,
            "--configDir",
            str(conf),
            *jm_dynamic,
        ],
        JOBMANAGER_CLASS,
    )
    # The SDK workers are children of the TaskManagers and inherit their environment (the key):
    # TaskManagers started with another key are restarted.
    marker = HOME / "run" / "taskmanager.key"
    names = [f"taskmanager-{i}" for i in range(1, TASK_MANAGERS + 1)]
    running = [name for name in names if pid_of(name)]
    if running and (not marker.exists() or marker.read_text().strip() != fingerprint):
        _log("the TaskManagers run with another pseudonymisation key: restarting them")
        for name in running:
            _stop(name)
    write_boot()
    tm_jvm, tm_dynamic = _resource_params(home, conf, "GET_TM_RESOURCE_PARAMS")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    for i in range(1, TASK_MANAGERS + 1):
        _start(
            f"taskmanager-{i}",
            [
                "java",
                *tm_jvm,
                *java,
                f"-Dlog.file={log / f'taskmanager-{i}.log'}",
                # A TaskManager that runs out of heap leaves a dump that names what held it.
                "-XX:+HeapDumpOnOutOfMemoryError",
                f"-XX:HeapDumpPath={log / f'taskmanager-{i}.hprof'}",
                f"-Dlog4j.configurationFile=file:{conf / 'log4j.properties'}",
                "-cp",
                lib,
                TASKMANAGER_CLASS,
                "--configDir",
                str(conf),
                *tm_dynamic,
            ],
            TASKMANAGER_CLASS,
            env=env,
        )
    marker.write_text(fingerprint + "\n")

    _start(
        "jobserver",
        [
            "java",
            "-Xmx512m",
            *java,
            "-cp",
            f"{jobserver}/*",
            JOBSERVER_CLASS,
            f"--flink-master=localhost:{PORTS['rest']}",
            f"--job-port={PORTS['job']}",
            f"--artifact-port={PORTS['artifact']}",
            f"--expansion-port={PORTS['expansion']}",
            f"--flink-conf-dir={conf}",
            # The jobs' staged artifacts under .flink/tmp/ too (else /tmp/beam-artifact-staging).
            f"--artifacts-dir={HOME / 'tmp' / 'artifacts'}",
        ],
        JOBSERVER_CLASS,
    )

    def cluster_ready() -> bool:
        info = overview()
        return bool(info) and info.get("taskmanagers") == TASK_MANAGERS  # type: ignore[union-attr]

    _wait(
        f"Flink REST /overview with {TASK_MANAGERS} taskmanagers",
        cluster_ready,
        timeout,
        ["jobmanager", "taskmanager-1", "taskmanager-2"],
    )
    _wait("the Beam job server", lambda: _listening(PORTS["job"]), timeout, ["jobserver"])
    write_options()
    _log(f"ready: http://localhost:{PORTS['rest']} ; Beam options in {HOME / 'options'}")


def write_boot() -> None:
    """`.flink/boot`: the SDK worker's boot command, run by each TaskManager per worker."""
    boot = HOME / "boot"
    boot.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "deploy" / "flink" / "boot.py"}" "$@"\n'
    )
    boot.chmod(0o755)


def options() -> list[str]:
    return [
        "--runner=FlinkRunner",
        f"--flink_master=localhost:{PORTS['rest']}",
        f"--job_endpoint=localhost:{PORTS['job']}",
        "--environment_type=PROCESS",
        '--environment_config={"command":"%s"}' % (HOME / "boot"),
        "--parallelism=2",
        # Keep a TaskManager's Python worker for the next stage of the same job instead of
        # starting a new one per stage (the 2,000-event job: 36 s instead of 61 s).
        "--environment_cache_millis=60000",
    ]


def write_options() -> None:
    (HOME / "options").write_text("\n".join(options()) + "\n")


NAMES = ["jobserver", *(f"taskmanager-{i}" for i in range(1, 3)), "jobmanager"]


def down() -> None:
    for name in NAMES:
        _stop(name)
    (HOME / "options").unlink(missing_ok=True)
    (HOME / "run" / "taskmanager.key").unlink(missing_ok=True)
    # Flink's spill files and the jobs' uploaded artifacts (hundreds of MB after the tests).
    shutil.rmtree(HOME / "tmp", ignore_errors=True)


def status() -> int:
    running = {name: pid_of(name) for name in NAMES}
    for name, pid in running.items():
        print(f"{name}: {'pid ' + str(pid) if pid else 'not running'}")
    info = overview()
    print(f"overview: {json.dumps(info) if info else 'unreachable'}")
    return 0 if all(running.values()) and info else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "options"])
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(args.timeout)
        elif args.command == "down":
            down()
        elif args.command == "options":
            print("\n".join(options()))
        else:
            return status()
    except ClusterError as exc:
        _log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
