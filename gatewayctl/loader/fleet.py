"""Several gateways in one profiles folder: which gateway is decided here, once, where the estate is loaded.

gateway.yaml either describes one gateway (today's form) or holds shared settings and a `gateways:`
mapping (model/fleet.py). `view` turns the estate into what one gateway sees: its GatewayFile (shared
settings with its own on top), the services it fronts, and the partners that connect through it with
only their peers, addresses and grants that concern it. Every stage after loading (validate, compile,
lint, plan, apply, report) works on that one-gateway estate as before. Line numbers stay the file's:
a view's documents map their locations back (ViewDocument.source_loc).

The rules, checked across the fleet by `fleet_errors` (each error names the file and line):
- a gateway fronts a service when every address of the service lies in its internal networks;
- a partner lists the gateways it connects through (or `all`), in order of preference; a peer may
  narrow that list; a peer needs a tunnel address in the pool of each of its gateways, and every
  tunnel address lies in the pool of one of them; pools of different gateways never overlap;
- a grant is reached through the first of the partner's gateways that fronts its service, and only
  there: so a partner's configs never route one address to two gateways (WireGuard on the partner's
  side sends an address to one peer), and the other gateways do not open what would never be used.
"""

from __future__ import annotations

from dataclasses import dataclass

from gatewayctl.errors import ProfileError, ProfileErrors
from gatewayctl.loader.yaml12 import Document
from gatewayctl.model import GatewayFile, PartnerFile, ServicesFile
from gatewayctl.model.fleet import SITE_FIELDS, FleetFile, site_settings
from gatewayctl.model.services import Service
from gatewayctl.model.types import IPNetwork
from gatewayctl.suggest import did_you_mean

Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class ViewDocument(Document):
    """A document seen through one gateway: `prefix` goes before locations of the site's own keys (the
    gateway's entry under `gateways:`), and `remap` gives, for a list at a location of the file, the
    file's index of each item the view kept."""

    prefix: Loc = ()
    site_keys: frozenset[str] = frozenset()
    remap: tuple[tuple[Loc, tuple[int, ...]], ...] = ()

    def source_loc(self, loc: Loc) -> Loc:
        if self.prefix and loc and loc[0] in self.site_keys:
            loc = (*self.prefix, *loc)
        lists = dict(self.remap)
        out: list[int | str] = []
        for part in loc:
            kept = lists.get(tuple(out))
            if kept is not None and isinstance(part, int) and 0 <= part < len(kept):
                part = kept[part]
            out.append(part)
        return tuple(out)


def names(fleet: FleetFile | None, single: GatewayFile | None) -> list[str]:
    """The gateways of the estate, in gateway.yaml's order."""
    if fleet is not None:
        return list(fleet.gateways)
    return [single.name] if single is not None else []


def choose(available: list[str], wanted: str | None, shown_path: str) -> str:
    """The gateway to load: `wanted`, or the only one; raises ProfileErrors naming the choices."""
    if wanted is None:
        if len(available) == 1:
            return available[0]
        raise ProfileErrors([ProfileError(shown_path, 0, f"this estate has {len(available)} gateways "
                                          f"({', '.join(available)}): say which with --gateway NAME")])
    if wanted not in available:
        raise ProfileErrors([ProfileError(shown_path, 0, f"--gateway {wanted!r}: no such gateway; this estate has "
                                          f"{', '.join(available)}{did_you_mean(wanted, available)}")])
    return wanted


def site_gateway(fleet: FleetFile, doc: Document, name: str) -> tuple[GatewayFile, ViewDocument]:
    """Gateway `name`'s GatewayFile and a document whose locations point into its entry."""
    site = fleet.gateways[name]
    # every part was validated in the FleetFile (the same field types as GatewayFile's): assembled, not
    # validated again; what was written stays recorded as written (lint reads model_fields_set)
    written = {n for n in fleet.model_fields_set if n in GatewayFile.model_fields} | \
        {n for n in site.model_fields_set if n in GatewayFile.model_fields} | {"name"}
    model = GatewayFile.model_construct(_fields_set=written, **site_settings(fleet, name))
    own = frozenset(n for n in SITE_FIELDS if n in site.model_fields_set) | {"name"}
    return model, ViewDocument(doc.path, doc.shown_path, None, doc.text, ("gateways", name), own)


def partner_gateways(partner: PartnerFile, available: list[str]) -> list[str]:
    """The gateways a partner connects through, in its order of preference."""
    if partner.gateways == ["all"] or (partner.gateways is None and len(available) == 1):
        return list(available)
    return [g for g in partner.gateways or [] if g in available]


def fronts(networks: list[IPNetwork], service: Service) -> bool:
    """Whether every address of the service lies in one of the networks."""
    return all(any(a.version == n.version and a.subnet_of(n) for n in networks)  # type: ignore[arg-type]
               for a in service.addresses)


def route(order: list[str], fronted: dict[str, set[str]], service: str) -> str | None:
    """The gateway a partner with gateways `order` reaches `service` through: the first that fronts it."""
    return next((g for g in order if service in fronted[g]), None)


def fronted_services(gateways: dict[str, GatewayFile], services: ServicesFile | None) -> dict[str, set[str]]:
    """The services each gateway fronts."""
    catalogue = services.services if services is not None else {}
    return {g: {s for s, svc in catalogue.items() if fronts(list(m.internal_networks), svc)} for g, m in gateways.items()}


def in_pool(net: IPNetwork, pool: list[IPNetwork]) -> bool:
    return any(net.version == p.version and net.subnet_of(p) for p in pool)  # type: ignore[arg-type]


def partner_view(loaded_model: PartnerFile, doc: Document, name: str, order: list[str], pools: dict[str, list[IPNetwork]],
                 fronted: dict[str, set[str]]) -> tuple[PartnerFile, ViewDocument, dict[int, str]] | None:
    """What gateway `name` sees of one partner, or None when the partner does not connect through it:
    its peers through `name` with their addresses in its pool, every grant (the stage ceilings count
    them all, and lint and validate read them as written), and by index the grants reached through
    another gateway, which the compiler leaves to that gateway."""
    if name not in order:
        return None
    remap: list[tuple[Loc, tuple[int, ...]]] = []
    peers, peer_index = [], []
    for j, peer in enumerate(loaded_model.peers):
        if name not in (peer.gateways or order):
            continue
        kept = [k for k, a in enumerate(peer.addresses) if in_pool(a, pools[name])]
        peers.append(peer.model_copy(update={"addresses": [peer.addresses[k] for k in kept]}))
        peer_index.append(j)
        remap.append((("peers", j, "addresses"), tuple(kept)))
    elsewhere = {i: via or "" for i, g in enumerate(loaded_model.grants) if (via := route(order, fronted, g.service)) != name}
    remap.append((("peers",), tuple(peer_index)))
    model = loaded_model.model_copy(update={"peers": peers})
    return model, ViewDocument(doc.path, doc.shown_path, None, doc.text, remap=tuple(remap)), elsewhere
