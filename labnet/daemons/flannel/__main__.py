"""Run a flannel agent by hand, inside a node namespace:

    ip netns exec flannel-vxlan-master python -m labnet.daemons.flannel --node master \\
        --etcd 10.46.181.10:2379 --iface eth0 --public-ip 10.46.181.145 --run-dir DIR

`inv up` forks agents from its own process instead (same code, faster start).
"""

from __future__ import annotations

import argparse
import sys

from labnet.daemons.flannel.agent import AgentConfig, main


def parse(argv: list[str]) -> AgentConfig:
    p = argparse.ArgumentParser(
        prog="python -m labnet.daemons.flannel",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--node", required=True)
    p.add_argument("--etcd", required=True, help="host:port of etcd's client URL")
    p.add_argument("--iface", default="eth0", help="underlay interface (flannel's --iface)")
    p.add_argument("--public-ip", required=True)
    p.add_argument("--subnet", help="pin this node's subnet instead of leasing one")
    p.add_argument("--mode", choices=["miss", "static"], default="miss")
    p.add_argument("--run-dir", required=True, help="where subnet.env is written")
    p.add_argument("--ip-masq", action="store_true", help="flanneld --ip-masq")
    p.add_argument("--etcd-api", choices=["v3", "v2"], default="v3")
    p.add_argument("--prefix", default="/coreos.com/network")
    p.add_argument("--lease-ttl", type=int, default=24 * 3600)
    p.add_argument("--release", default="0.6", help="the flannel release to behave as")
    a = p.parse_args(argv)
    host, _, port = a.etcd.rpartition(":")
    return AgentConfig(
        a.node,
        host,
        int(port),
        a.iface,
        a.public_ip,
        a.subnet,
        a.mode,
        a.run_dir,
        a.ip_masq,
        a.etcd_api,
        a.prefix,
        a.lease_ttl,
        release=a.release,
    )


if __name__ == "__main__":
    sys.exit(main(parse(sys.argv[1:])))
