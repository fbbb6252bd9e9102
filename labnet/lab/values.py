"""A lab's own values for the commands of walkthroughs and challenges: `{ip.pod3}`,
`{mac.minion}` (flannel.1's MAC), `{ns.pod1}`, `{subnet.master}`, `{cali.pod3}` (a pod's
Calico veth), `{etcd}`."""

from __future__ import annotations

from types import SimpleNamespace

from labnet import model, plan
from labnet.errors import InputError
from labnet.lab import lookup


def _names(mapping: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(**{k.replace("-", "_"): v for k, v in mapping.items()})


def values(lab_name: str) -> SimpleNamespace:
    st = lookup.load_state(lab_name)
    topo = model.load(st.topology)
    calico = {p.name: plan.cali_name(p.namespace, p.name) for p in topo.pods} if topo.calico else {}
    return SimpleNamespace(
        ip=_names(st.addresses),
        mac=_names(lookup.flannel_macs(st) if topo.flannel else {}),
        ns=_names({k: f"{lab_name}-{k}" for k in st.roles}),
        subnet=_names({n: f["subnet"] for n, f in st.nodes.items()}),
        cali=_names(calico),
        etcd=st.etcd,
    )


def fill(text: str, v: SimpleNamespace) -> str:
    try:
        return text.format_map(vars(v))
    except (AttributeError, KeyError, IndexError, ValueError) as exc:
        raise InputError(
            f"lab value {text!r}: {exc}",
            "use {ip.NAME}, {mac.NODE}, {ns.NAME}, {subnet.NODE}, {cali.POD} or {etcd}",
        ) from None
