"""
An apiserver's ``/readyz`` over TLS, read the same way by the master (``salt-run
paas_kubernetes.verify``, through the VIPs) and by a node (``kubernetes.resumed``, its
own apiserver after a restore): anonymous, as kubeadm's apiserver allows for its health
paths.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request


def readyz(address: str, port: int, context: ssl.SSLContext, timeout: float) -> str:
    """``ok`` when the apiserver at ``address:port`` answers ``/readyz`` with 200 over TLS
    that ``context`` trusts; else what went wrong (``HTTP <code>: <the failed checks>``,
    or why there was no answer)."""
    url = f"https://{address}:{port}/readyz"
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout):
            return "ok"
    except urllib.error.HTTPError as err:
        # kube-apiserver lists the checks that failed ("[-]etcd failed: reason withheld").
        body = err.read().decode("utf-8", "replace")
        failed = [line for line in body.splitlines() if line.startswith("[-]")]
        return f"HTTP {err.code}: {'; '.join(failed) or body.strip() or err.reason}"
    except OSError as err:
        return str(getattr(err, "reason", err))
