"""Load a profiles folder into validated models, collecting every error first."""

from __future__ import annotations

import contextlib
import gc
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from gatewayctl.errors import ProfileError, ProfileErrors, display_path, shown
from gatewayctl.loader import fleet, parsecache, prefetch
from gatewayctl.loader.yaml12 import Document, read_document
from gatewayctl.model import GatewayFile, PartnerFile, ServicesFile
from gatewayctl.model.fleet import FleetFile
from gatewayctl.model.types import DATE_MAX, DATE_MIN, PATTERN_HELP, IPNetwork
from gatewayctl.validate_fleet import Fleet, fleet_errors

M = TypeVar("M", bound=BaseModel)

GATEWAY_FILE = "gateway.yaml"
SERVICES_FILE = "services.yaml"
_DATE_BOUNDS = {DATE_MIN.isoformat(), DATE_MAX.isoformat()}
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")


@dataclass(frozen=True)
class Loaded(Generic[M]):
    """A validated model with the document it came from (for line numbers)."""

    model: M
    doc: Document
    # a partner in one gateway's view of several: its grants reached through another gateway, by index
    elsewhere: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Estate:
    """Everything in one profiles folder, schema-valid file by file."""

    root: Path
    gateway: Loaded[GatewayFile]
    services: Loaded[ServicesFile]
    partners: tuple[Loaded[PartnerFile], ...]
    gateways: tuple[str, ...] = ()  # every gateway of the estate (loader/fleet.py); `gateway` is the one loaded
    fleet_internal: tuple[IPNetwork, ...] = ()  # several gateways: the internal networks of all of them

    @property
    def several(self) -> bool:
        """Whether the estate has more than one gateway (output then says which gateway it is about)."""
        return len(self.gateways) > 1


@dataclass(frozen=True)
class PartialEstate:
    """The files that passed the schema, and the errors of those that did not."""

    root: Path
    gateway: Loaded[GatewayFile] | None
    services: Loaded[ServicesFile] | None
    partners: tuple[Loaded[PartnerFile], ...]
    errors: tuple[ProfileError, ...]
    gateways: tuple[str, ...] = ()  # every gateway of the estate; `gateway` is the one loaded
    fleet_internal: tuple[IPNetwork, ...] = ()  # several gateways: the internal networks of all of them


def load_estate(root: Path, gateway: str | None = None, only: list[Path] | None = None) -> PartialEstate:
    """Read and schema-validate every file under `root`, collecting errors rather than stopping; in an
    estate of several gateways, what `gateway` sees of it (the only one when None: loader/fleet.py).
    `only`: of the partner files, just these (a partner-scoped apply, gatewayctl/apply/scoped.py: the
    estate it gives is not the whole one, and the cross-partner checks see only these partners).
    Raises ProfileErrors when the folder is missing or the gateway cannot be chosen."""
    if not root.is_dir():
        raise ProfileErrors([ProfileError(display_path(root), 0, "profiles folder not found (use --profiles DIR)")])
    with gc_paused(), (parsecache.bypassed() if only is not None else contextlib.nullcontext()):
        return _load_all(root, gateway, only)


def gateway_names(root: Path) -> list[str]:
    """The gateways gateway.yaml describes, in its order (empty when it cannot be read)."""
    try:
        data = read_document(root / GATEWAY_FILE, GATEWAY_FILE, root).data
    except ProfileErrors:
        return []
    if isinstance(data, dict) and isinstance(data.get("gateways"), dict):
        return [str(k) for k in data["gateways"]]
    return [str(data["name"])] if isinstance(data, dict) and isinstance(data.get("name"), str) else []


def _load_all(root: Path, wanted: str | None, only: list[Path] | None = None) -> PartialEstate:
    errors: list[ProfileError] = []
    shown_root = display_path(root)
    shown_gateway = f"{shown_root}/{GATEWAY_FILE}"
    fleet_or_gateway = _load_gateway(root, shown_gateway, errors)
    services = _load_file(root, SERVICES_FILE, f"{shown_root}/{SERVICES_FILE}", ServicesFile, errors)

    def validate(doc: Document | ProfileErrors) -> Loaded[PartnerFile] | None:
        return _validate(doc, PartnerFile, errors)

    taken = prefetch.take(root, validate) if only is None else None
    if taken is None:
        files = prefetch.partner_files(root, errors) if only is None else sorted(only)
        partners = [validate(_read(root, path, shown))
                    for path, shown in zip(files, prefetch.shown_paths(root, files), strict=True)]
    else:
        partners, listing_errors = taken
        errors.extend(listing_errors)
    parsecache.save()
    loaded = tuple(p for p in partners if p is not None)
    if fleet_or_gateway is None:
        return PartialEstate(root, None, services, loaded, tuple(sorted(errors)))
    return _one_gateway(root, fleet_or_gateway, services, loaded, errors, wanted, shown_gateway)


def _load_gateway(root: Path, shown_path: str, errors: list[ProfileError]) -> Loaded[Any] | None:
    """gateway.yaml as a GatewayFile (one gateway) or a FleetFile (a `gateways:` mapping)."""
    if not os.path.lexists(root / GATEWAY_FILE):
        errors.append(ProfileError(shown_path, 0, f"required file not found: {GATEWAY_FILE}"))
        return None
    doc = _read(root, root / GATEWAY_FILE, shown_path)
    several = isinstance(doc, Document) and isinstance(doc.data, dict) and "gateways" in doc.data
    return _validate(doc, FleetFile if several else GatewayFile, errors)


def _one_gateway(root: Path, loaded: Loaded[Any], services: Loaded[ServicesFile] | None,
                 partners: tuple[Loaded[PartnerFile], ...], errors: list[ProfileError], wanted: str | None,
                 shown_path: str) -> PartialEstate:
    """The estate as gateway `wanted` sees it, with the fleet's own errors (validate_fleet.py)."""
    several = isinstance(loaded.model, FleetFile)
    available = fleet.names(loaded.model if several else None, None if several else loaded.model)
    name = fleet.choose(available, wanted, shown_path)
    if several:
        gateways = {g: fleet.site_gateway(loaded.model, loaded.doc, g) for g in available}
        gateway = Loaded(*gateways[name])
        models = {g: m for g, (m, _) in gateways.items()}
    else:
        gateway, models = loaded, {name: loaded.model}
    errors += fleet_errors(Fleet(models, loaded.doc, several), services.model if services else None,
                           [(p.model, p.doc) for p in partners])
    if several:
        fronted = fleet.fronted_services(models, services.model if services else None)
        pools = {g: list(m.wireguard.pool) for g, m in models.items()}
        views = [fleet.partner_view(p.model, p.doc, name, fleet.partner_gateways(p.model, available), pools, fronted)
                 for p in partners]
        partners = tuple(Loaded(*v) for v in views if v is not None)
    internal = tuple(n for m in models.values() for n in m.internal_networks) if several else ()
    return PartialEstate(root, gateway, services, partners, tuple(sorted(errors)), tuple(available), internal)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small, long-lived objects.

    Loading allocates hundreds of thousands of objects that all survive; the collector would
    repeatedly walk them for nothing (a third of the load time at 5,000 partners)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_file(root: Path, name: str, shown_path: str, model: type[M], errors: list[ProfileError]) -> Loaded[M] | None:
    if not os.path.lexists(root / name):
        errors.append(ProfileError(shown_path, 0, f"required file not found: {name}"))
        return None
    return _validate(_read(root, root / name, shown_path), model, errors)


def _read(root: Path, path: Path, shown_path: str) -> Document | ProfileErrors:
    try:
        return read_document(path, shown_path, root)
    except ProfileErrors as exc:
        return exc


def _validate(doc: Document | ProfileErrors, model: type[M], errors: list[ProfileError]) -> Loaded[M] | None:
    """Schema-validate one parsed file; its problems go to `errors`."""
    if isinstance(doc, ProfileErrors):
        errors.extend(doc.errors)
        return None
    shown_path = doc.shown_path
    if not isinstance(doc.data, dict):
        errors.append(ProfileError(shown_path, 1, f"the file must be a mapping of settings, found {type(doc.data).__name__}"))
        return None
    try:
        validated = model.model_validate(doc.data)
    except ValidationError as exc:
        errors.extend(_translate(exc, doc, model))
        return None
    # the plain data is not needed once validated: keeping it for thousands of files costs memory
    return Loaded(validated, Document(doc.path, doc.shown_path, None, doc.text))


def _translate(exc: ValidationError, doc: Document, model: type[BaseModel]) -> list[ProfileError]:
    found = []
    for err in exc.errors(include_url=False):
        loc = tuple(part for part in err["loc"] if part != "[key]")
        found.append(doc.error(loc, _message(err, loc, model)))
    return found


def _message(err: Any, loc: tuple[Any, ...], model: type[BaseModel] | None = None) -> str:
    """The message for one validation error at `loc` of a file read as `model` (an unknown field
    gets the closest field name that model knows there, if one is close)."""
    where = _dotted(loc) or "file"
    kind = err["type"]
    if kind == "missing":
        return f"{where}: required field is missing"
    if kind == "extra_forbidden":
        from gatewayctl.loader.fields import known_fields
        from gatewayctl.suggest import closest

        close = closest(str(loc[-1]), known_fields(model, loc[:-1])) if model is not None and loc else None
        if close is not None:
            return f"{where}: unknown field (did you mean {close!r}? see the profile reference)"
        return f"{where}: unknown field (check its spelling in the profile reference)"
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        message = "must be " + PATTERN_HELP.get(err["ctx"]["pattern"], f"text matching {err['ctx']['pattern']}")
    if kind in ("less_than_equal", "greater_than_equal") and {str(v) for v in err["ctx"].values()} & _DATE_BOUNDS:
        message = f"must be a date from {DATE_MIN} to {DATE_MAX} (the range whose expiries nftables can hold)"
    if "[key]" in err["loc"]:
        return f"{where}: name {shown(err['input'])} {message}"
    return f"{where}: {message}; found {shown(err['input'])}"


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if not isinstance(part, int) and not _PLAIN_KEY.fullmatch(str(part)):
            part = shown(str(part), 40)  # an unknown key is the file's text: quoted and shortened
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text



def peek_names(root: Path) -> tuple[str, str] | None:
    """The WireGuard interface and nft table named by gateway.yaml, read without validating anything else."""
    try:
        data = read_document(root / GATEWAY_FILE, GATEWAY_FILE, root).data
        return str(data["wireguard"]["interface"]), str(data.get("firewall", {}).get("table", "gatewayctl"))
    except (ProfileErrors, KeyError, TypeError, AttributeError):
        return None
