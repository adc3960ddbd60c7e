# Copyright: gatewayctl contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Shared by the gatewayctl modules: finding and running gatewayctl on the gateway, reading its state
folder, and the profiles' git checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile

DEFAULT_STATE_DIR = "/var/lib/gatewayctl"
PENDING = "pending-confirm.json"  # gatewayctl's file while an `apply --confirm-timeout` awaits `confirm`
# What click prints when an option is unknown: older gatewayctl releases have no --gateway.
UNKNOWN_GATEWAY = "No such option: --gateway"
# Git runs on the checkout without hooks or fsmonitor: nothing committed to the profiles decides what runs.
GIT_SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "protocol.file.allow=always")


def common_options(profiles_required=True):
    """The options every module takes (argument_spec entries)."""
    return dict(
        profiles=dict(type="path", required=profiles_required),
        gateway=dict(type="str"),
        netns=dict(type="str"),
        state_dir=dict(type="path"),
        executable=dict(type="path", default="gatewayctl"),
    )


def tail(text, lines=12):
    """The last `lines` non-empty lines of gatewayctl's output, joined for a one-line msg."""
    kept = [line for line in (text or "").splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def error_lines(text):
    """gatewayctl's own `error: ...` lines (all of them), else its last lines."""
    errors = [line[len("error: "):] for line in (text or "").splitlines() if line.startswith("error: ")]
    return "; ".join(errors) if errors else tail(text)


class Gatewayctl:
    """gatewayctl on the managed host, run with the module's options."""

    def __init__(self, module):
        self.module = module
        params = module.params
        wanted = params["executable"]
        found = wanted if os.path.isabs(wanted) else module.get_bin_path(wanted, opt_dirs=["/usr/local/bin"])
        if not found or not os.access(found, os.X_OK):
            module.fail_json(msg=f"gatewayctl is not installed on this host: {wanted!r} was not found (set the module's "
                                 "`executable` option, or install gatewayctl: docs/fleet.md)")
        self.binary = found
        self.gateway = params.get("gateway")
        self.netns = params.get("netns")
        self.explicit_state_dir = params.get("state_dir")

    @property
    def state_dir(self):
        """The state folder gatewayctl uses with these options (its own default rule)."""
        if self.explicit_state_dir:
            return self.explicit_state_dir
        return os.path.join(DEFAULT_STATE_DIR, "netns", self.netns) if self.netns else DEFAULT_STATE_DIR

    def argv(self, command, args, profiles=None, host=True):
        """The command line: gatewayctl [--profiles P] COMMAND [--gateway G] [--netns N --state-dir D] ARGS."""
        argv = [self.binary, "-q"]
        if profiles:
            argv += ["--profiles", profiles]
        argv.append(command)
        if self.gateway:
            argv += ["--gateway", self.gateway]
        if host:
            if self.netns:
                argv += ["--netns", self.netns]
            if self.explicit_state_dir:
                argv += ["--state-dir", self.explicit_state_dir]
        return argv + list(args)

    def run(self, command, args=(), profiles=None, host=True, ok=(0,)):
        """Run gatewayctl; returns (rc, stdout, stderr). Any exit status outside `ok` fails the task with
        gatewayctl's own error text and exit status."""
        argv = self.argv(command, args, profiles, host)
        rc, out, err = self.module.run_command(argv)
        if self.gateway and UNKNOWN_GATEWAY in err:
            self.module.fail_json(
                msg=f"the gatewayctl on this host ({self.version()}) does not know --gateway, which the `gateway` option needs: "
                    "install a release with estates of several gateways, or leave `gateway` unset",
                rc=rc, stderr=err, cmd=argv)
        if rc not in ok:
            self.module.fail_json(msg=f"gatewayctl {command} failed (exit {rc}): {error_lines(err or out)}",
                                  rc=rc, stdout=out, stderr=err, cmd=argv)
        return rc, out, err

    def version(self):
        rc, out, _ = self.module.run_command([self.binary, "--version"])
        return out.strip().splitlines()[0] if rc == 0 and out.strip() else "version unknown"

    def read_state(self, name):
        """A JSON file of the state folder, or None."""
        path = os.path.join(self.state_dir, name)
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self.module.fail_json(msg=f"cannot read gatewayctl's state file {path}: {exc}")
            return None

    def pending(self):
        """Whether an apply awaits `gatewayctl confirm`."""
        return os.path.exists(os.path.join(self.state_dir, PENDING))

    def pending_id(self):
        """The id of the apply that awaits `gatewayctl confirm`, or None. (The file also holds the previous
        device configuration, secrets included: only the id is kept.)"""
        pending = self.read_state(PENDING)
        return str(pending.get("id")) if isinstance(pending, dict) and pending.get("id") else None

    def journal_events(self, apply_id, tail_bytes=1 << 20):
        """The journal's events about one apply (`applied`, `confirmed`, `rolled-back`...), oldest first;
        only the journal's last `tail_bytes` are read (it is append-only and may be long)."""
        path = os.path.join(self.state_dir, "journal.jsonl")
        try:
            with open(path, "rb") as handle:
                handle.seek(max(0, os.path.getsize(path) - tail_bytes))
                lines = handle.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # the first line of a tail may be cut
            if isinstance(entry, dict) and entry.get("apply_id") == apply_id:
                events.append(entry)
        return events

    def last_apply(self):
        """Revision, digest and time of the last apply recorded in the state folder, or None."""
        applied = self.read_state("applied.json")
        if not applied:
            return None
        return {k: applied.get(k) for k in ("revision", "dirty", "digest", "applied_at")}


class Checkout:
    """The git checkout that holds the profiles folder, found as gatewayctl finds it: the nearest `.git`
    at or above the folder (never git's own discovery, which a committed bare repository can fool)."""

    def __init__(self, module, profiles):
        self.module = module
        self.profiles = os.path.realpath(profiles)
        self.git = module.get_bin_path("git", required=True)
        self.top = self._top(self.profiles)
        if self.top is None:
            module.fail_json(msg=f"the profiles folder {profiles} is not in a git checkout: `revision` needs one")
        self.dotgit = os.path.join(self.top, ".git")

    @staticmethod
    def _top(folder):
        while True:
            dotgit = os.path.join(folder, ".git")
            if os.path.lexists(dotgit) and not os.path.islink(dotgit):
                return folder
            parent = os.path.dirname(folder)
            if parent == folder:
                return None
            folder = parent

    def _git(self, *args, check=True):
        argv = [self.git, *GIT_SAFE, "--git-dir", self.dotgit, "--work-tree", self.top, *args]
        rc, out, err = self.module.run_command(argv, cwd=self.top)
        if check and rc != 0:
            self.module.fail_json(msg=f"git {args[0]} failed in {self.top} (exit {rc}): {tail(err or out)}", rc=rc)
        return rc, out.strip()

    @property
    def subpath(self):
        """The profiles folder relative to the checkout's top."""
        return os.path.relpath(self.profiles, self.top)

    def head(self):
        rc, out = self._git("rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
        return out if rc == 0 else None

    def resolve(self, revision, fetch, remote):
        """The commit `revision` names; fetched from `remote` first when the checkout does not have it."""
        rc, out = self._git("rev-parse", "--verify", "-q", revision + "^{commit}", check=False)
        if rc != 0 and fetch:
            self._git("fetch", "-q", remote)
            rc, out = self._git("rev-parse", "--verify", "-q", revision + "^{commit}", check=False)
        if rc != 0:
            self.module.fail_json(msg="revision {!r} is not in the checkout {}{}".format(
                revision, self.top, "" if fetch else " (fetch is off)"))
        return out

    def local_changes(self):
        """Files of the profiles folder that differ from HEAD (tracked or not): a checkout with local
        changes is not any revision, so it is neither applied from nor moved."""
        _, out = self._git("status", "--porcelain", "--untracked-files=all", "--", self.subpath)
        return [line[3:] for line in out.splitlines() if line.strip()]

    def switch(self, commit):
        """Check out `commit` (detached)."""
        self._git("checkout", "-q", "--detach", commit)

    def export(self, commit):
        """The profiles folder of `commit` in a new temporary folder (for check mode, which must not move
        the checkout); returns (temporary folder, profiles path inside it)."""
        temp = tempfile.mkdtemp(prefix="gatewayctl-check-")
        archive = os.path.join(temp, "tree.tar")
        argv = [self.git, *GIT_SAFE, "--git-dir", self.dotgit, "archive", "--format=tar", "-o", archive, commit]
        if self.subpath != ".":
            argv.append(self.subpath)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            shutil.rmtree(temp, ignore_errors=True)
            self.module.fail_json(msg=f"git archive {commit} failed: {tail(result.stderr)}")
        with tarfile.open(archive) as tar:
            # regular files and folders only, inside the target (tarfile's "data" filter is not in every 3.x)
            members = [m for m in tar.getmembers() if (m.isfile() or m.isdir()) and not m.name.startswith("/")
                       and ".." not in m.name.split("/")]
            tar.extractall(os.path.join(temp, "tree"), members=members)
        os.unlink(archive)
        return temp, os.path.join(temp, "tree", self.subpath)
