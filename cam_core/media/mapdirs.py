"""A run's map folders, each opened once without following links, and map
files written and removed relative to them.

An output folder is checked when a run starts, but a folder under it can be
swapped for a symbolic link afterwards. Files are therefore created through
the descriptors of the folders the run opened (``O_NOFOLLOW``, ``dir_fd``): a
swapped path cannot send them elsewhere. :meth:`MapFolders.verify`, called
before each batch is stored, checks that the paths the samples will hold
still lead to those folders, so a run whose folder was swapped stops before
a sample points through the link. On systems without ``dir_fd`` (Windows)
each write checks its folder's real path instead.
"""
import os

_AT = os.open in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW")
_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class MapWriteError(OSError):
    """A map file that could not be written (disk full, read-only, not a
    folder, a folder swapped for a link), with the path in its message."""


def is_map_name(name):
    """Names cam_core writes in a run's field folders: ``<sample id>.png``
    and its temporary ``<sample id>.png.<pid>.tmp``."""
    stem = name.split(".", 1)[0]
    return len(stem) == 24 and all(c in "0123456789abcdef" for c in stem) and (
        name.endswith(".png") or name.endswith(".tmp"))


def _ident(st):
    return st.st_dev, st.st_ino


class MapFolders:
    """The output folder and a run's field folders (``<output_dir>/<field>``),
    held open for the run. Use as a context manager, or :meth:`close`.

    Args:
        output_dir: the run's output folder
        fields: the run's Heatmap field names (one folder each)
        create (True): create the folders that are missing (a run); False
            opens only those that exist (a cleanup), and skips any that is a
            link or not a folder

    Raises:
        MapWriteError: (``create``) when a folder cannot be made or opened,
            or is a symbolic link
    """

    def __init__(self, output_dir, fields, create=True):
        self.output_dir = output_dir
        self._fds, self._ids, self._out = {}, {}, None
        try:
            if create:
                os.makedirs(output_dir, exist_ok=True)
            elif not os.path.isdir(output_dir):
                return
            self._out = self._open(os.path.realpath(output_dir))
            for f in fields:
                if create:
                    try:
                        os.mkdir(f, dir_fd=self._out) if _AT else os.mkdir(os.path.join(output_dir, f))
                    except FileExistsError:
                        pass
                try:
                    self._fds[f] = self._open(f, self._out)
                except OSError:
                    if create:
                        raise
        except OSError as e:
            self.close()
            path = os.path.join(output_dir, f) if self._out is not None else output_dir
            raise MapWriteError(e.errno, f"map folder '{path}' cannot be used: {e.strerror or e}. cam_core writes "
                                         f"maps only into real folders (not symbolic links) it can write") from e
        self._ids = {f: self._stat(fd) for f, fd in self._fds.items()}

    def _open(self, path, parent=None):
        if not _AT:
            if os.path.islink(path if parent is None else os.path.join(self.output_dir, path)):
                raise OSError(40, "is a symbolic link")
            return path if parent is None else os.path.join(self.output_dir, path)
        return os.open(path, _DIR, dir_fd=parent)

    def _stat(self, fd):
        return _ident(os.fstat(fd) if _AT else os.stat(os.path.realpath(fd)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for fd in list(self._fds.values()) + ([self._out] if self._out is not None else []):
            if _AT:
                os.close(fd)
        self._fds, self._out = {}, None

    def fields(self):
        """The field folders that are open."""
        return list(self._fds)

    def path(self, field, name):
        return os.path.join(self.output_dir, field, name)

    def probe(self, name, data):
        """Writes ``data`` as ``name`` in the output folder and removes it (can files be written here?)."""
        self.write(None, name, data)
        self.discard(None, name)

    def _folder(self, field):
        folder = self._out if field is None else self._fds[field]
        if folder is None:  # a cleanup's folder that does not exist
            raise FileNotFoundError(2, f"no folder '{self.output_dir}'")
        return folder

    def _at(self, field, name):
        """``(path, keywords)`` of ``name`` in ``field``'s folder (None: the output folder)."""
        folder = self._folder(field)
        return (name, {"dir_fd": folder}) if _AT else (os.path.join(folder, name), {})

    def write(self, field, name, data):
        """Writes ``data`` as ``name`` in ``field``'s folder (None: the output
        folder itself), whole or not at all: a new temporary file (never an
        existing one or a link), then renamed.

        Raises:
            MapWriteError: naming the file and the system's reason
        """
        tmp, at = self._at(field, f"{name}.{os.getpid()}.tmp")
        dst, _ = self._at(field, name)
        try:
            if not _AT and field is not None:
                self._check(field)
            try:
                fd = os.open(tmp, _NEW, 0o666, **at)
            except FileExistsError:  # left by a killed process that had this pid
                os.unlink(tmp, **at)
                fd = os.open(tmp, _NEW, 0o666, **at)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                folder = self._folder(field)
                os.replace(tmp, dst, **({"src_dir_fd": folder, "dst_dir_fd": folder} if _AT else {}))
            except BaseException:
                self.discard(field, os.path.basename(tmp))
                raise
        except OSError as e:
            where = self.output_dir if field is None else os.path.join(self.output_dir, field)
            raise MapWriteError(e.errno, f"could not write map file '{os.path.join(where, name)}': "
                                         f"{e.strerror or e}") from e

    def discard(self, field, name):
        """Removes ``name`` from ``field``'s folder (None: the output folder) if
        it is there (a link is removed, never followed); returns whether it was."""
        path, at = self._at(field, name)
        try:
            os.unlink(path, **at)
            return True
        except FileNotFoundError:
            return False

    def read(self, name):
        """The bytes of ``name`` in the output folder, or None (a link or a folder is not read)."""
        path, at = self._at(None, name)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), **at)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def listing(self):
        """The names in the output folder."""
        return os.listdir(self._out) if self._out is not None else []

    def names(self, field):
        """The map files (and temporaries) in ``field``'s folder."""
        if field not in self._fds:
            return []
        return [n for n in os.listdir(self._fds[field]) if is_map_name(n)]

    def remove(self, paths):
        """Deletes map files given by path, each only if it lies in one of
        these folders and is named as a map; returns the paths removed."""
        removed = []
        for path in paths:
            field, name = os.path.basename(os.path.dirname(path or "")), os.path.basename(path or "")
            if (field in self._fds and is_map_name(name)
                    and os.path.dirname(path) == os.path.join(self.output_dir, field) and self.discard(field, name)):
                removed.append(path)
        return removed

    def remove_empty(self, fields=None):
        """Removes the field folders (of ``fields``, default all) that are empty; returns their names."""
        gone = []
        for f in [f for f in self._fds if fields is None or f in fields]:
            try:
                os.rmdir(f, dir_fd=self._out) if _AT else os.rmdir(os.path.join(self.output_dir, f))
                gone.append(f)
            except OSError:  # not empty, or replaced meanwhile
                pass
        return gone

    def verify(self):
        """Checks that each field folder's path still leads to the folder
        opened (what the stored ``map_path`` s will be read through).

        Raises:
            MapWriteError: naming the folder that was replaced and where it leads now
        """
        for f in self._fds:
            self._check(f)

    def _check(self, field):
        path = os.path.join(self.output_dir, field)
        try:
            same = _ident(os.stat(path)) == self._ids[field]
        except OSError:
            same = False
        if not same:
            raise MapWriteError(
                0, f"map folder '{path}' was replaced while the run wrote into it (it now leads to "
                   f"'{os.path.realpath(path)}'): the run stops and stores nothing through it. Check who changed "
                   f"the folder, then continue the run (skip_existing=True)")
