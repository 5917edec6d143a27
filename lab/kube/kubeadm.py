"""
The lab's kubeadm double: `kubeadm` 1.34.2 for what the platform runs, on the lab's
apiserver and kubelet doubles, installed as /usr/bin/kubeadm by the lab's kubeadm package.

Test double of the lab (never imported by product code). It copies kubeadm's command
line, files, exit codes and error words from the Kubernetes source. This file is the
program: the command tree, cobra's flags and errors, `kubeadm version` and kubeadm's
"error: ..." with exit 1 (cmd/kubeadm/app/cmd/cmd.go, version.go, util/errors/errors.go).
The rest sits beside it, one module for each part of kubeadm's source it copies:
- kubeadm_init.py, kubeadm_join.py, kubeadm_reset.py, kubeadm_token.py, kubeadm_certs.py
  and kubeadm_config.py: the commands (cmd/init.go, join.go, reset.go, token.go,
  certs.go, config.go);
- kubeadm_preflight.py, kubeadm_kubeconfig.py, kubeadm_controlplane.py,
  kubeadm_kubelet.py, kubeadm_copycerts.py and kubeadm_discovery.py: preflight/, the
  phases and join's token discovery;
- kubeadm_api.py and kubeadm_validation.py: the configuration API, its strict decoding
  and its validation;
- kubeadm_client.py, kubeadm_constants.py, kubeadm_util.py and kubeadm_pki.py: the API
  client, constants.go, errors and output, the cryptography; kube_common.py: what the
  lab's Kubernetes doubles share.

What it does not do: pull images or run containers (the kubelet double runs the apiserver
double from the manifest), local etcd, addons (CoreDNS, kube-proxy), RBAC objects (the
apiserver double has none), upgrades, kubeadm's other commands; component configs
(KubeletConfiguration, KubeProxyConfiguration) are taken as given, not checked. Where the
lab has no controller-manager, the double plays its bootstrapsigner, tokencleaner and
garbage collector (for kubeadm-certs) each time it talks to the cluster as admin.

--rootfs (a real kubeadm flag: it chroots there) prefixes every path the double touches;
the double's tests use it to write a node's files into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

import yaml

try:
    from lab.kube import (
        kube_common,
        kubeadm_api,
        kubeadm_certs,
        kubeadm_config,
        kubeadm_constants,
        kubeadm_init,
        kubeadm_join,
        kubeadm_pki,
        kubeadm_reset,
        kubeadm_token,
        kubeadm_util,
    )
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kube_common  # type: ignore[no-redef]
    import kubeadm_api  # type: ignore[no-redef]
    import kubeadm_certs  # type: ignore[no-redef]
    import kubeadm_config  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_init  # type: ignore[no-redef]
    import kubeadm_join  # type: ignore[no-redef]
    import kubeadm_pki  # type: ignore[no-redef]
    import kubeadm_reset  # type: ignore[no-redef]
    import kubeadm_token  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"
# Not a real build: the double says so where a build would name its commit.
VERSION_INFO = kube_common.version_info("paas-lab-kubeadm-double")


def run_version(options) -> None:
    if options.output == "json":
        kubeadm_util.say(json.dumps({"clientVersion": VERSION_INFO}, indent=2))
    elif options.output == "yaml":
        kubeadm_util.say(yaml.safe_dump({"clientVersion": VERSION_INFO}, sort_keys=False).rstrip())
    elif options.output == "short":
        kubeadm_util.say(kubeadm_constants.KUBERNETES_VERSION)
    elif not options.output:
        fields = ", ".join(f'{k[0].upper()}{k[1:]}:"{v}"' for k, v in VERSION_INFO.items())
        kubeadm_util.say(f"kubeadm version: &version.Info{{{fields}}}")
    else:
        raise kubeadm_util.KubeadmError(f"invalid output format: {options.output}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        match = re.search(r"unrecognized arguments: (\S+)", message)
        if match:
            flag = match.group(1)
            raise kubeadm_util.KubeadmError(
                f"unknown flag: {flag.split('=')[0]}"
                if flag.startswith("-")
                else f'unknown command "{flag}" for "{self.prog}"'
            )
        raise kubeadm_util.KubeadmError(message)


def _list_flag(value: str) -> list[str]:
    return [item for item in value.split(",") if item]


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="kubeadm", allow_abbrev=False, add_help=True)
    root.add_argument("--rootfs", default="")
    root.add_argument("-v", "--v", dest="verbosity", default="0")
    commands = root.add_subparsers(dest="command", parser_class=_Parser)

    def common(sub, kubeconfig=False):
        sub.add_argument("--rootfs", default=argparse.SUPPRESS)
        sub.add_argument("-v", "--v", dest="verbosity", default=argparse.SUPPRESS)
        if kubeconfig:
            sub.add_argument("--kubeconfig", default="")
        return sub

    init = common(commands.add_parser("init", allow_abbrev=False))
    init.add_argument("--config", default="")
    init.add_argument("--upload-certs", action="store_true")
    init.add_argument("--certificate-key", default="")
    init.add_argument("--ignore-preflight-errors", type=_list_flag, action="extend", default=[])
    init.add_argument("--skip-phases", type=_list_flag, action="extend", default=[])
    init.add_argument("--skip-token-print", action="store_true")
    init_phases = init.add_subparsers(dest="init_command", parser_class=_Parser)
    phase = init_phases.add_parser("phase", allow_abbrev=False)
    phase_commands = phase.add_subparsers(dest="phase_command", parser_class=_Parser)
    upload = common(phase_commands.add_parser("upload-certs", allow_abbrev=False), True)
    upload.add_argument("--config", default="")
    upload.add_argument("--upload-certs", action="store_true")
    upload.add_argument("--certificate-key", default="")
    upload.add_argument("--skip-certificate-key-print", action="store_true")

    join = common(commands.add_parser("join", allow_abbrev=False))
    join.add_argument("endpoint", nargs="?", default="")
    join.add_argument("--config", default="")
    join.add_argument("--token", default="")
    join.add_argument("--discovery-token", default="")
    join.add_argument("--tls-bootstrap-token", default="")
    join.add_argument(
        "--discovery-token-ca-cert-hash", type=_list_flag, action="extend", default=[]
    )
    join.add_argument("--discovery-token-unsafe-skip-ca-verification", action="store_true")
    join.add_argument("--control-plane", action="store_true")
    join.add_argument("--certificate-key", default="")
    join.add_argument("--node-name", default="")
    join.add_argument("--apiserver-advertise-address", default="")
    join.add_argument("--apiserver-bind-port", type=int, default=6443)
    join.add_argument("--ignore-preflight-errors", type=_list_flag, action="extend", default=[])
    join.add_argument("--skip-phases", type=_list_flag, action="extend", default=[])

    reset = common(commands.add_parser("reset", allow_abbrev=False))
    reset.add_argument("-f", "--force", action="store_true")
    reset.add_argument("--cleanup-tmp-dir", action="store_true")
    reset.add_argument("--ignore-preflight-errors", type=_list_flag, action="extend", default=[])

    token = common(commands.add_parser("token", allow_abbrev=False), True)
    tokens = token.add_subparsers(dest="token_command", parser_class=_Parser)
    create = common(tokens.add_parser("create", allow_abbrev=False), True)
    create.add_argument("token", nargs="?", default="")
    create.add_argument("--config", default="")
    create.add_argument("--ttl", default=None)
    create.add_argument("--description", default=None)
    create.add_argument("--usages", default=None)
    create.add_argument("--groups", default=None)
    create.add_argument("--print-join-command", action="store_true")
    create.add_argument("--certificate-key", default="")
    listing = common(tokens.add_parser("list", allow_abbrev=False), True)
    listing.add_argument("-o", "--output", default="text")
    delete = common(tokens.add_parser("delete", allow_abbrev=False), True)
    delete.add_argument("tokens", nargs="*")

    certs = common(commands.add_parser("certs", allow_abbrev=False))
    certs_commands = certs.add_subparsers(dest="certs_command", parser_class=_Parser)
    common(certs_commands.add_parser("certificate-key", allow_abbrev=False))
    expiration = common(certs_commands.add_parser("check-expiration", allow_abbrev=False), True)
    expiration.add_argument("--config", default="")
    expiration.add_argument("--cert-dir", default="")
    # certs.go getRenewSubCommands: one subcommand per certificate and "all", each with
    # --config, --cert-dir and --kubeconfig.
    renew = common(certs_commands.add_parser("renew", allow_abbrev=False), True)
    renew.add_argument("renew_name", nargs="?", default="")
    renew.add_argument("--config", default="")
    renew.add_argument("--cert-dir", default="")

    config = common(commands.add_parser("config", allow_abbrev=False), True)
    config_commands = config.add_subparsers(dest="config_command", parser_class=_Parser)
    validate = common(config_commands.add_parser("validate", allow_abbrev=False))
    validate.add_argument("--config", default="")
    validate.add_argument("--allow-experimental-api", action="store_true")

    version = common(commands.add_parser("version", allow_abbrev=False))
    version.add_argument("-o", "--output", default="")
    return root


def dispatch(options) -> None:
    command = options.command
    if command == "init":
        if getattr(options, "init_command", None) == "phase":
            if getattr(options, "phase_command", None) != "upload-certs":
                raise kubeadm_util.KubeadmError(
                    "the double copies only 'kubeadm init phase upload-certs'"
                )
            kubeadm_init.run_upload_certs(options)
        else:
            kubeadm_init.run_init(options)
    elif command == "join":
        kubeadm_join.run_join(options)
    elif command == "reset":
        kubeadm_reset.run_reset(options)
    elif command == "token":
        handlers = {
            "create": kubeadm_token.run_token_create,
            "list": kubeadm_token.run_token_list,
            "delete": kubeadm_token.run_token_delete,
        }
        if options.token_command not in handlers:
            raise kubeadm_util.KubeadmError(
                'missing subcommand; "token" is not meant to be run on its own'
            )
        handlers[options.token_command](options)
    elif command == "certs":
        handlers = {
            "certificate-key": kubeadm_certs.run_certificate_key,
            "check-expiration": kubeadm_certs.run_check_expiration,
            "renew": kubeadm_certs.run_renew,
        }
        if options.certs_command not in handlers:
            raise kubeadm_util.KubeadmError(
                'missing subcommand; "certs" is not meant to be run on its own'
            )
        handlers[options.certs_command](options)
    elif command == "config":
        if options.config_command != "validate":
            raise kubeadm_util.KubeadmError(
                'missing subcommand; "config" is not meant to be run on its own'
            )
        kubeadm_config.run_config_validate(options)
    elif command == "version":
        run_version(options)
    else:
        raise kubeadm_util.KubeadmError(
            "the double copies init, join, reset, token, certs, config validate and version"
        )


def main(argv: list[str] | None = None) -> int:
    try:
        options = parser().parse_args(argv)
        kubeadm_util.Node.rootfs = (options.rootfs or "").rstrip("/")
        dispatch(options)
    except (
        kubeadm_util.KubeadmError,
        kubeadm_api.ConfigError,
        kubeadm_util.ApiError,
        kubeadm_pki.PKIError,
    ) as err:
        sys.stdout.flush()
        sys.stderr.write(f"error: {err}\n{STACK_HINT}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
