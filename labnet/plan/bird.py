"""Each node's BIRD config, as calico-node's confd renders it at Calico v3.31.7 (its
templates bird.cfg, bird_aggr.cfg and bird_ipam.cfg; fixtures in
tests/goldens/calico/), translated from calico-bird's BIRD 1.6 dialect to BIRD 2:

- import and export rules move into `ipv4 { }` channels, and so do the template's
  `gateway recursive` and `add paths on`; static and direct protocols get `ipv4;`;
- the kernel protocol gets `metric 0;` (BIRD 2 writes metric 32 by default, 1.6 none) and
  its filter rejects device routes (BIRD 1.6's kernel protocol never exported them);
- `krt_tunnel = "";` goes (calico-bird's own attribute; without IPIP it sets nothing).

What it says: the node's block is a static blackhole route, exported to the kernel; the
export filter announces the block and nothing more specific inside it (the pods' /32
routes stay on the node); the peers are every other node (the node-to-node mesh, `Mesh_`
sessions, one direction each: the node with the greater address, as a string, connects),
or with route reflectors the reflectors alone (`Node_` sessions, `rr client` on the
reflector's side). Pure: no I/O.
"""

from __future__ import annotations

from ..model import Node, Topology
from .objects import Daemon, netns_name

RR_CLUSTER_ID = "244.0.0.1"  # the routeReflectorClusterID of Calico's documentation
FILES = ("bird.cfg", "bird_aggr.cfg", "bird_ipam.cfg")


def daemons(topo: Topology) -> list[Daemon]:
    """One BIRD a node; its three files in its settings (file name -> text)."""
    return [
        Daemon(
            f"bird-{n.name}", "bird", netns_name(topo.name, n.name), tuple(files(topo, n).items())
        )
        for n in topo.nodes
    ]


def files(topo: Topology, node: Node, cluster_id: str = RR_CLUSTER_ID) -> dict[str, str]:
    cal = topo.calico
    return {
        "bird.cfg": bird_cfg(topo, node, cluster_id),
        "bird_aggr.cfg": _AGGR.format(block=node.subnet),
        "bird_ipam.cfg": _IPAM.format(pool=cal.pool),
    }


def _id(address: object) -> str:
    return str(address).replace(".", "_")


def bird_cfg(topo: Topology, node: Node, cluster_id: str = RR_CLUSTER_ID) -> str:
    cal = topo.calico
    reflector = node.name in cal.route_reflectors
    if reflector:
        mesh = (
            f"# This node ({node.name}) is configured as a route reflector with cluster ID "
            f"{cluster_id};\n# ignore node-to-node mesh setting.\n"
        )
    elif cal.route_reflectors:
        mesh = "# Node-to-node mesh disabled\n"
    else:
        mesh = "".join(_mesh_peer(topo, node, o) for o in topo.nodes)
    peers = [o for o in topo.nodes if o is not node]
    if not reflector:
        peers = [o for o in peers if o.name in cal.route_reflectors]
    specific = "".join(_node_peer(node, o, cal.asn, cluster_id if reflector else "") for o in peers)
    return _BIRD.format(
        router_id=node.address,
        asn=cal.asn,
        mesh=mesh,
        node_peers=specific or "# No node-specific peers configured.\n",
    )


def _mesh_peer(topo: Topology, node: Node, other: Node) -> str:
    head = f"\n# For peer /bgp/v1/host/{other.name}/ip_addr_v4\n"
    if other is node:
        return head + f"# Skipping ourselves ({node.address})\n"
    # confd compares the addresses as strings: the greater one connects, the other listens
    passive = (
        "  passive on; # Mesh is unidirectional, peer will connect to us.\n"
        if str(other.address) > str(node.address)
        else ""
    )
    return head + (
        f"protocol bgp Mesh_{_id(other.address)} from bgp_template {{\n"
        f"  neighbor {other.address} as {topo.calico.asn};\n"
        f"  source address {node.address};  # The local address we use for the TCP connection\n"
        "  ipv4 {\n"
        "    import all;        # Import all routes, since we don't know what the upstream\n"
        "                       # topology is and therefore have to trust the ToR/RR.\n"
        "    export filter {\n"
        "      calico_export_to_bgp_peers(true);\n"
        "      reject;\n"
        "    };  # Only want to export routes for workloads.\n"
        "  };\n"
        f"{passive}}}\n"
    )


def _node_peer(node: Node, other: Node, asn: int, cluster_id: str) -> str:
    rr = f"  rr client;\n  rr cluster id {cluster_id};\n" if cluster_id else ""
    return (
        f"\n# For peer /bgp/v1/host/{node.name}/peer_v4/{other.address}\n"
        f"protocol bgp Node_{_id(other.address)} from bgp_template {{\n"
        "  ttl security off;\n"
        "  multihop;\n"
        f"  neighbor {other.address} as {asn};\n"
        f"  source address {node.address};  # The local address we use for the TCP connection\n"
        "  ipv4 {\n"
        "    import filter {\n"
        '      accept; # Prior to introduction of BGP Filters we used "import all" so use '
        "default accept behaviour on import\n"
        "    };\n"
        "    export filter {\n"
        "      calico_export_to_bgp_peers(true);\n"
        "      reject;\n"
        "    };  # Only want to export routes for workloads.\n"
        "  };\n"
        f"{rr}}}\n"
    )


_BIRD = """\
function apply_communities ()
{{
}}

# Generated by confd
include "bird_aggr.cfg";
include "bird_ipam.cfg";

router id {router_id};

# Configure synchronization between routing tables and kernel.
protocol kernel {{
  learn;             # Learn all alien routes from the kernel
  persist;           # Don't remove routes on bird shutdown
  scan time 2;       # Scan kernel routing table every 2 seconds
  ipv4 {{
    import all;
    export filter calico_kernel_programming; # Default is export none
  }};
  metric 0;          # BIRD 2: no metric on the routes, as calico-bird (BIRD 1.6) writes them
  graceful restart;  # Turn on graceful restart to reduce potential flaps in
                     # routes when reloading BIRD configuration.  With a full
                     # automatic mesh, there is no way to prevent BGP from
                     # flapping since multiple nodes update their BGP
                     # configuration at the same time, GR is not guaranteed to
                     # work correctly in this scenario.
  merge paths on;    # Allow export multipath routes (ECMP)
}}

# Watch interface up/down events.
protocol device {{
  debug {{ states }};
  scan time 2;    # Scan interfaces every 2 seconds
}}

protocol direct {{
  debug {{ states }};
  ipv4;              # BIRD 2: a direct protocol without a channel makes no routes
  interface -"cali*", -"kube-ipvs*", "*"; # Exclude cali* and kube-ipvs* but
                                          # include everything else.  In
                                          # IPVS-mode, kube-proxy creates a
                                          # kube-ipvs0 interface. We exclude
                                          # kube-ipvs0 because this interface
                                          # gets an address for every in use
                                          # cluster IP. We use static routes
                                          # for when we legitimately want to
                                          # export cluster IPs.
}}


# Template for all BGP clients
template bgp bgp_template {{
  debug {{ states }};
  description "Connection to BGP peer";
  local as {asn};
  ipv4 {{
    gateway recursive; # This should be the default, but just in case.
    add paths on;
  }};
  graceful restart;  # See comment in kernel section about graceful restart.
  connect delay time 2;
  connect retry time 5;
  error wait time 5,30;
}}

# -------------- BGP Filters ------------------
# No v4 BGPFilters configured

# ------------- Node-to-node mesh -------------
{mesh}

# ------------- Global peers -------------
# No global peers configured.


# ------------- Node-specific peers -------------
{node_peers}"""

_AGGR = """\
# Generated by confd

protocol static {{
   ipv4;
   # IP blocks for this host.
   route {block} blackhole;
}}


# Aggregation of routes on this host; export the block, nothing beneath it.
function calico_aggr ()
{{
      # Block {block} is confirmed
      if ( net = {block} ) then {{ accept; }}
      if ( net ~ {block} ) then {{ reject; }}
}}
"""

_IPAM = """\
# Generated by confd
function reject_disabled_pools ()
{{

}}

function reject_tunnel_routes () {{
  # Don't export tunnel routes to other nodes, Felix programs them.
  # IPIP routes are handled by Bird, and it does not re-advertise them.
  if (defined(ifname)) then {{
     if ((ifname ~ "*.cali") || (ifname ~ "*.calico")) then {{
        reject;
     }}
  }}
}}

function reject_local_routes () {{
  # Don't export local routes learned via BPF as they should never leave the node.
  if (defined(ifname)) then {{
     if (ifname ~ "bpf*.cali") then {{
        reject;
     }}
  }}
}}

function calico_export_to_bgp_peers(bool internal_peer) {{
  # filter code terminates when it calls `accept;` or `reject;`,
  # call reject_disabled_pools() first, then reject_tunnel_routes(),
  # then apply_communities() and then calico_aggr()
  reject_disabled_pools();
  if (internal_peer) then {{
    reject_tunnel_routes();
  }}
  reject_local_routes();
  apply_communities();
  calico_aggr();

  if ( net ~ {pool} ) then {{
    accept;
  }}
}}


filter calico_kernel_programming {{
  # BIRD 2: BIRD 1.6's kernel protocol never exported device routes
  if ( source = RTS_DEVICE ) then {{ reject; }}

  if ( net ~ {pool} ) then {{
    accept;
  }}

  accept;
}}
"""
