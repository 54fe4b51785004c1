"""Security: scripts inside a .blend stay inert unless trusted, no shell, private job folders, no open ports."""

import ast
import os
import subprocess
import sys
import time

import psutil
import pytest
from farmtest import ROOT, wait_for, worker_processes

from dispatcher import jobs
from dispatcher.devices import DeviceReport
from dispatcher.images import check_image
from dispatcher.process import worker_command
from dispatcher.runner import run_job
from dispatcher.spec import JobSpec

CPU_ONLY = DeviceReport(gpus=[], cpu={"usable_cores": 2})

BUILD_TRAP = """
import sys, bpy
source, target, marker = sys.argv[1:4]
bpy.ops.wm.open_mainfile(filepath=source)
text = bpy.data.texts.new("autorun.py")  # a registered text block: runs on load when scripts are allowed
text.write(f"open({marker + '.text'!r}, 'w').write('ran')\\n")
text.use_module = True
curve = bpy.context.scene.camera.driver_add("location", 0)  # a Python driver: runs on every evaluation
curve.driver.type = "SCRIPTED"
curve.driver.expression = f"(open({marker + '.driver'!r}, 'w').write('ran') and 0) or 0.0"
bpy.ops.wm.save_as_mainfile(filepath=target)
"""


@pytest.fixture(scope="module")
def trap_blend(tiny_blend, tmp_path_factory):
    """A scene whose auto-run text block and driver would each write a marker file."""
    root = tmp_path_factory.mktemp("trap")
    target, marker = root / "trap.blend", root / "marker"
    subprocess.run([sys.executable, "-c", BUILD_TRAP, str(tiny_blend), str(target), str(marker)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    assert not list(root.glob("marker*")), "building the trap must not run it"
    return target, marker


@pytest.mark.parametrize("trust", [False, True])
def test_scripts_in_the_blend_run_only_with_trust(trap_blend, trust, tmp_path):
    blend, marker = trap_blend
    for stale in marker.parent.glob("marker*"):
        stale.unlink()
    spec = JobSpec(blend=str(blend), output_dir=str(tmp_path / "out"), device_type="CPU", frames="1-2",
                   trust_scripts=trust)  # fmt: skip
    status = run_job(jobs.create_job(spec, job_dir=str(tmp_path / "job")), report=CPU_ONLY, handle_signals=False)
    assert status["state"] == "done" and check_image(str(tmp_path / "out" / "frame_0002.png")) is None
    ran = sorted(path.name for path in marker.parent.glob("marker*"))
    assert ran == (["marker.driver", "marker.text"] if trust else [])


def test_blender_binary_workers_get_factory_startup_and_disable_autoexec():
    argv = worker_command("/opt/blender/blender", "/scenes/a b.blend", ["--lane", "gpu0"])
    assert argv[:4] == ["/opt/blender/blender", "-b", "--factory-startup", "--disable-autoexec"]
    assert "/scenes/a b.blend" in argv and "--enable-autoexec" not in argv
    trusted = worker_command("/opt/blender/blender", "/scenes/a b.blend", [], trust=True)
    assert "--enable-autoexec" in trusted and "--disable-autoexec" not in trusted
    python = worker_command(sys.executable, "/scenes/a b.blend", ["--lane", "cpu0"])
    assert "--trust" not in python and "--trust" in worker_command(sys.executable, "x.blend", [], trust=True)


def python_sources():
    for folder in ("dispatcher", "tools", "extension", "gpu_render_farm"):
        yield from sorted((ROOT / folder).rglob("*.py")) if (ROOT / folder).is_dir() else []


def test_no_shell_anywhere_and_every_command_is_a_list():
    spawners = {"run", "Popen", "call", "check_call", "check_output", "system", "popen", "getoutput", "getstatusoutput"}
    problems, calls = [], 0
    for path in python_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            owner = getattr(node.func, "value", None)
            owner = getattr(owner, "id", "")
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if any(kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False)
                   for kw in node.keywords):  # fmt: skip
                problems.append(f"{where}: shell=")
            if owner == "os" and name in ("system", "popen"):
                problems.append(f"{where}: os.{name}")
            if owner == "subprocess" and name in spawners:
                calls += 1
                if name in ("getoutput", "getstatusoutput"):
                    problems.append(f"{where}: subprocess.{name} uses a shell")
                elif node.args and isinstance(node.args[0], ast.Constant | ast.JoinedStr | ast.BinOp):
                    problems.append(f"{where}: command given as a string")
    assert calls >= 3, "the scan found no subprocess calls: it is not looking at the code"
    assert not problems, problems


def test_job_folder_and_logs_are_private_even_with_an_open_umask(tiny_blend, tmp_path):
    old = os.umask(0)
    try:
        spec = JobSpec(blend=str(tiny_blend), output_dir=str(tmp_path / "out"), device_type="CPU", frames="1",
                       cpu_lanes=2)  # fmt: skip
        job_dir = jobs.create_job(spec, job_dir=str(tmp_path / "jobs" / "job"))
        assert run_job(job_dir, report=CPU_ONLY, handle_signals=False)["state"] == "done"
    finally:
        os.umask(old)
    assert oct(os.stat(job_dir).st_mode & 0o777) == "0o700"
    assert oct(os.stat(os.path.join(job_dir, "logs")).st_mode & 0o777) == "0o700"
    logs = sorted(os.listdir(os.path.join(job_dir, "logs")))
    assert logs == ["cpu0.log", "cpu1.log"]
    for name in logs:
        assert oct(os.stat(os.path.join(job_dir, "logs", name)).st_mode & 0o777) == "0o600", name


def test_nothing_listens_on_a_network_port_during_a_run(slow_blend, tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "dispatcher", "render", str(slow_blend), "-o", str(out), "--frames", "1-6",
            "--cpu-lanes", "2", "--job-dir", str(tmp_path / "job")]  # fmt: skip
    dispatcher = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(worker_processes(str(slow_blend))) == 2, 60, what="two workers")
        seen, samples = set(), 0
        while dispatcher.poll() is None and samples < 40:
            for process in [psutil.Process(dispatcher.pid), *worker_processes(str(slow_blend))]:
                try:
                    for connection in process.net_connections(kind="inet"):
                        seen.add((process.pid, connection.status, connection.laddr))
                    for child in process.children():
                        try:  # a worker that just quit may be a zombie for a moment: it runs nothing
                            line = " ".join(child.cmdline())
                            # Blender asks xdg-user-dir for the Documents folder as it starts (seen once in 6 runs)
                            expected = "worker.py" in line or line.endswith("xdg-user-dir DOCUMENTS 2> /dev/null")
                            if child.status() != psutil.STATUS_ZOMBIE and not expected:
                                seen.add(("child", child.pid, " ".join(child.cmdline())[:80]))
                        except psutil.NoSuchProcess:
                            continue
                except psutil.NoSuchProcess:
                    continue
            samples += 1
            time.sleep(0.1)
        assert samples >= 5, "the run ended before it could be watched"
        assert not seen, f"network sockets or unexpected child processes: {seen}"
    finally:
        dispatcher.wait(120)
    assert dispatcher.returncode == 0
