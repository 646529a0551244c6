"""Writing results without ever leaving a half-written file or touching what is not ours.

* :func:`atomic_path` / :func:`atomic_write`: a file is written to a temporary name in its own
  folder and renamed into place (``os.replace``, atomic on POSIX and Windows), so the target holds
  either its previous content or the complete new one.
* :class:`OutputDir`: a result made of several files (``fitdoctor fix``) is built in a temporary
  folder inside the output folder, under a lock file, and moved in at the end.
* Inputs are protected: a path given as an input is never an output (:func:`refuse_inputs`).
* The renames that commit a result run with SIGINT held back, so Ctrl-C lands before or after them,
  never between them; :data:`CANCELLED` (set by the command line's SIGINT handler) stops a commit
  that has not begun.

Every refusal is an :class:`~fitdoctor.errors.InputError` (one line; exit 2 on the command line).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from typing import Iterable, Iterator

from .errors import InputError

#: set when the user asked to stop (Ctrl-C): no result is committed after that
CANCELLED = threading.Event()
#: the final paths committed by this process, in order (the command line reports them on Ctrl-C)
COMMITTED: list[str] = []
#: > 0 while a commit runs: a SIGINT handler then only sets CANCELLED and :data:`PENDING`
HOLDING = [0]
#: a Ctrl-C arrived during a commit: raised as KeyboardInterrupt when the commit ends
PENDING = threading.Event()

TMP_PREFIX = ".fitdoctor-tmp-"
LOCK_NAME = ".fitdoctor.lock"


def _check_cancelled() -> None:
    if CANCELLED.is_set():
        raise KeyboardInterrupt


def holding() -> bool:
    """True while a commit runs (a SIGINT handler should then call :func:`defer_interrupt`)."""
    return HOLDING[0] > 0


def defer_interrupt() -> None:
    """Record a Ctrl-C that arrived during a commit; it is raised when the commit ends."""
    CANCELLED.set()
    PENDING.set()


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold Ctrl-C back around a few renames: the command line's handler defers it while
    :func:`holding`, and it is raised here once the renames are done."""
    HOLDING[0] += 1
    try:
        yield
    finally:
        HOLDING[0] -= 1
    if HOLDING[0] == 0 and PENDING.is_set():
        PENDING.clear()
        raise KeyboardInterrupt


def same_file(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name one file (same path after resolving links, or same inode)."""
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_inputs(output: str, inputs: Iterable[str | None], option: str = "--output") -> None:
    """InputError when ``output`` is one of ``inputs`` (never write over what the user gave)."""
    for given in inputs:
        if given and same_file(output, given):
            raise InputError(f"{option} {output} is an input of this command: fitdoctor never writes over its inputs; "
                             "choose another path")


def _writable_target(path: str, option: str) -> None:
    if os.path.isdir(path):
        raise InputError(f"{option} {path} is a directory: give a file name")


@contextlib.contextmanager
def atomic_path(path: str, *, option: str = "--output") -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    _writable_target(path, option)
    parent = os.path.dirname(os.path.abspath(path))
    created = []
    try:
        head = parent
        while not os.path.exists(head):
            created.append(head)
            head = os.path.dirname(head)
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=os.path.splitext(path)[1], dir=parent)
        os.close(fd)
    except OSError as exc:
        raise InputError(f"cannot write {path} ({exc.strerror}): choose another {option}") from None
    committed = False
    try:
        yield tmp
        _check_cancelled()
        with _sigint_held():
            try:
                if os.path.exists(path):  # keep the mode of the file it replaces
                    shutil.copymode(path, tmp)
                else:
                    os.chmod(tmp, 0o666 & ~_umask())
                os.replace(tmp, path)
            except OSError as exc:
                raise InputError(f"cannot write {path} ({exc.strerror}): choose another {option}") from None
            committed = True
            COMMITTED.append(path)
    finally:
        if not committed:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            for d in created:  # folders made for this file only
                with contextlib.suppress(OSError):
                    os.rmdir(d)


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: os.umask() has no read-only form


def _umask() -> int:
    return _UMASK


def atomic_write(path: str, data: str | bytes, *, option: str = "--output") -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file and a rename."""
    with atomic_path(path, option=option) as tmp:
        try:
            with open(tmp, "wb") as fh:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise InputError(f"cannot write {path} ({exc.strerror}): choose another {option}") from None


class DirectoryLock:
    """An exclusive lock file ``.fitdoctor.lock`` in a folder; a stale one (dead process) is taken over."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, LOCK_NAME)
        self._held = False

    def acquire(self) -> "DirectoryLock":
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._stale():
                    with contextlib.suppress(OSError):
                        os.unlink(self.path)
                    continue
                raise InputError(f"{self.directory} is in use by another fitdoctor run ({self.path} exists): "
                                 "wait for it to finish or choose another --output") from None
            except OSError as exc:
                raise InputError(f"cannot write in {self.directory} ({exc.strerror}): choose another --output") from None
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            self._held = True
            return self
        raise InputError(f"{self.directory} is in use by another fitdoctor run ({self.path} exists): "
                         "wait for it to finish or choose another --output")

    def _stale(self) -> bool:
        try:
            with open(self.path, encoding="utf-8") as fh:
                pid = int(fh.read().strip() or 0)
        except (OSError, ValueError):
            return False  # being written right now, or not ours to judge
        if pid <= 0 or pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False

    def release(self) -> None:
        if self._held:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self._held = False


class OutputDir:
    """A multi-file result, built aside and moved into ``directory`` at the end.

    ``names`` are the files the result may hold. On entering: ``directory`` must not be a file, no
    name may be a folder there, none may exist unless ``force``, and none may be one of ``inputs``
    (even with ``force``); the folder is created if missing and locked. Files are written to
    :meth:`path` (a temporary folder inside ``directory``); :meth:`commit` renames them into place
    with SIGINT held back. Leaving without a commit removes the temporary folder, the lock, and the
    folder itself when this run created it: the folder is as it was.
    """

    def __init__(self, directory: str, names: Iterable[str], *, force: bool = False,
                 inputs: Iterable[str | None] = (), option: str = "--output", force_hint: str = "--force") -> None:
        self.directory = os.fspath(directory)
        self.names = list(dict.fromkeys(names))
        self.force = force
        self.inputs = [os.fspath(p) for p in inputs if p]
        self.option = option
        self.force_hint = force_hint
        self.created = False
        self.committed: list[str] = []
        self.staging: str | None = None
        self._lock: DirectoryLock | None = None

    # -- checks -------------------------------------------------------------------------------
    def targets(self) -> dict[str, str]:
        return {n: os.path.join(self.directory, n) for n in self.names}

    def check(self) -> None:
        """Refuse, before any work, everything that would make the result overwrite or fail late."""
        d, opt = self.directory, self.option
        if os.path.exists(d) and not os.path.isdir(d):
            raise InputError(f"{opt} {d} is a file, not a folder: give a folder name")
        targets = self.targets()
        for name, path in targets.items():
            for given in self.inputs:
                if same_file(path, given):
                    raise InputError(f"{opt} {d} would overwrite the input {given} ({name}): fitdoctor never writes "
                                     "over its inputs, even with {self.force_hint}; choose another folder")
        folders = [n for n, p in targets.items() if os.path.isdir(p)]
        if folders:
            raise InputError(f"{opt} {d} holds folder(s) named {', '.join(folders)}, where fitdoctor writes files: "
                             "choose another folder")
        if not self.force:
            taken = [n for n, p in targets.items() if os.path.lexists(p)]
            if taken:
                raise InputError(f"{opt} {d} already holds {', '.join(taken)}: choose an empty or new folder, or "
                                 f"add {self.force_hint} to replace them")

    # -- life cycle ---------------------------------------------------------------------------
    def __enter__(self) -> "OutputDir":
        self.check()
        d = self.directory
        try:
            if not os.path.isdir(d):
                os.makedirs(os.path.dirname(os.path.abspath(d)), exist_ok=True)
                try:
                    os.mkdir(d)
                    self.created = True
                except FileExistsError:  # a concurrent run made it first: the lock decides
                    pass
        except OSError as exc:
            raise InputError(f"cannot create {d} ({exc.strerror}): choose another {self.option}") from None
        try:
            self._lock = DirectoryLock(d).acquire()
            try:
                self.staging = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=d)
            except OSError as exc:
                raise InputError(f"cannot write in {d} ({exc.strerror}): choose another {self.option}") from None
        except BaseException:
            self._cleanup()
            raise
        return self

    def path(self, name: str) -> str:
        """Where to write ``name`` now (inside the temporary folder)."""
        if self.staging is None:
            raise RuntimeError("OutputDir.path() outside its 'with' block")
        if name not in self.names:
            raise ValueError(f"{name!r} is not one of this result's files ({', '.join(self.names)})")
        return os.path.join(self.staging, name)

    def commit(self) -> list[str]:
        """Move every written file into the folder (SIGINT held back); returns their final paths."""
        if self.staging is None:
            raise RuntimeError("OutputDir.commit() outside its 'with' block")
        _check_cancelled()
        written = [n for n in self.names if os.path.exists(os.path.join(self.staging, n))]
        self.check()  # nothing appeared meanwhile
        mode = 0o666 & ~_umask()
        with _sigint_held():
            try:
                for n in written:
                    src = os.path.join(self.staging, n)
                    os.chmod(src, mode)
                    os.replace(src, os.path.join(self.directory, n))
                    self.committed.append(os.path.join(self.directory, n))
            except OSError as exc:
                raise InputError(f"cannot write in {self.directory} ({exc.strerror}): choose another "
                                 f"{self.option}") from None
            COMMITTED.extend(self.committed)
        return list(self.committed)

    def _cleanup(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self.created and not self.committed:
            with contextlib.suppress(OSError):
                os.rmdir(self.directory)  # only when empty: what this run created

    def __exit__(self, *exc) -> None:
        with _sigint_held():
            self._cleanup()
