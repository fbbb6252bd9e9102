"""Tasks that work inside a running lab: exec, shell, logs, rules, curl, ping."""

from __future__ import annotations

from invoke import task

from labnet.cli import glue

LAB_HELP = "lab name, when several labs are up"


@task(help={"name": "node, pod, host or pod/container", "lab": LAB_HELP})
@glue.friendly
def exec(c, name, lab=""):
    """Run a command inside a node or pod: inv exec pod1 -- ping -c 3 172.16.57.15"""
    from labnet.daemons import etcd
    from labnet.lab import lookup

    argv = glue.require_argv(glue.argv_after_dashes(c.remainder), "inv exec NAME -- COMMAND")
    place = lookup.find(name, lab or None)
    api = lookup.load_state(place.lab).etcd_api
    glue.replace_with(lookup.exec_argv(place, argv), etcd.tools_env(api))


@task(help={"name": "node, pod, host or pod/container", "lab": LAB_HELP})
@glue.friendly
def shell(c, name, lab=""):
    """Open an interactive shell inside a node or pod (exit to leave)."""
    from labnet.daemons import etcd
    from labnet.lab import lookup

    place = lookup.find(name, lab or None)
    api = lookup.load_state(place.lab).etcd_api
    env = dict(etcd.tools_env(api), PS1=f"[{place.lab}:{place.name}] \\w# ")
    glue.replace_with(lookup.exec_argv(place, ["bash", "--norc", "-i"]), env)


@task(help={"name": "a node (its flannel agent), etcd, pod/container or host", "lab": LAB_HELP})
@glue.friendly
def logs(c, name, lab=""):
    """Show the events of a node's flannel agent (or etcd's, or a workload's), with times."""
    from labnet.lab import lookup
    from labnet.render import terminal

    place = lookup.find(name, lab or None)
    path = lookup.log_path(place)
    terminal.console.print(f"[dim]{path}[/dim]")
    terminal.output(
        path.read_text() if path.exists() else "(empty)",
        ("l3-miss", "neigh-written", "fdb-written", "fatal"),
    )


@task(help={"node": "node name", "lab": LAB_HELP})
@glue.friendly
def rules(c, node, lab=""):
    """Show a node's kube-proxy chains as a tree, then `iptables -t nat -nL` as it is (in
    kube-proxy's nftables mode: `nft list table ip kube-proxy`, its one table)."""
    from labnet import model
    from labnet.kernel import iptables, netns
    from labnet.lab import lookup
    from labnet.render import terminal

    place = lookup.find(node, lab or None)
    if model.load(lookup.load_state(place.lab).topology).kube_proxy_mode == "nftables":
        terminal.heading(f"[{node}] nft list table ip kube-proxy (kube-proxy's nftables mode)")
        argv = ["nft", "list", "table", "ip", "kube-proxy"]
        proc = netns.run(place.netns, argv, timeout=30, text=True)
        terminal.output(proc.stdout or proc.stderr, (r"vmap", r"numgen", r"dnat to", "masquerade"))
        return
    chains = iptables.parse_save(iptables.save(place.netns))
    terminal.console.print(terminal.rules_tree(node, chains))
    terminal.heading(f"[{node}] iptables -t nat -nL")
    terminal.output(iptables.listing(place.netns), (r"KUBE-SVC-\w+ ", "statistic", "MARK or"))


@task(
    help={
        "source": "node, pod, host or pod/container to run curl in",
        "url": "the URL",
        "lab": LAB_HELP,
    }
)
@glue.friendly
def curl(c, source, url, lab=""):
    """curl a URL from inside a node, pod or host: inv curl pod1 http://192.168.3.22:8080/"""
    from labnet.lab import lookup

    place = lookup.find(source, lab or None)
    glue.replace_with(lookup.exec_argv(place, ["curl", "-sS", "--max-time", "5", url]))


@task(
    help={
        "source": "node, pod or host to ping from",
        "target": "a name or an address",
        "count": "how many pings",
        "lab": LAB_HELP,
    }
)
@glue.friendly
def ping(c, source, target, count=3, lab=""):
    """ping a node, pod or host (by name or address) from another: inv ping pod1 pod3"""
    from labnet.lab import lookup

    place = lookup.find(source, lab or None)
    address = lookup.address_of(lookup.load_state(place.lab), target)
    argv = ["ping", "-c", str(count), "-i", "0.2", "-W", "2", address]
    glue.replace_with(lookup.exec_argv(place, argv))
