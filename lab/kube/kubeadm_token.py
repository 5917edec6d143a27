"""
The kubeadm double's bootstrap tokens: `kubeadm token create/list/delete`
(cmd/kubeadm/app/cmd/token.go), the token Secrets
(cmd/kubeadm/app/apis/bootstraptoken/v1/utils.go, phases/bootstraptoken/node), and the
parts of kube-controller-manager kubeadm relies on (bootstrapsigner, tokencleaner, the
garbage collector for kubeadm-certs), which the lab has no controller-manager to run:
the double plays them each time it talks to the cluster with admin credentials.

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import base64
import datetime
import json
import time

import yaml

try:
    from lab.kube import (
        kube_common,
        kubeadm_api,
        kubeadm_client,
        kubeadm_config,
        kubeadm_constants,
        kubeadm_pki,
        kubeadm_util,
        kubeadm_validation,
    )
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kube_common  # type: ignore[no-redef]
    import kubeadm_api  # type: ignore[no-redef]
    import kubeadm_client  # type: ignore[no-redef]
    import kubeadm_config  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_pki  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]
    import kubeadm_validation  # type: ignore[no-redef]


def token_expiration(token: dict, now: float | None = None) -> str | None:
    """The RFC 3339 expiration a bootstrap token Secret gets (BootstrapTokenToSecret)."""
    if token.get("expires"):
        return token["expires"]
    ttl = kubeadm_util.parse_duration(token.get("ttl") or "0")
    if ttl <= 0:
        return None
    moment = (now or time.time()) + ttl
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def token_secret(token: dict) -> dict:
    """BootstrapTokenToSecret."""
    token_id, token_secret_value = token["token"].split(".")
    data = {
        "token-id": kube_common.b64(token_id),
        "token-secret": kube_common.b64(token_secret_value),
    }
    if token.get("description"):
        data["description"] = kube_common.b64(token["description"])
    expiration = token_expiration(token)
    if expiration:
        data["expiration"] = kube_common.b64(expiration)
    for usage in token.get("usages") or []:
        data[f"usage-bootstrap-{usage}"] = kube_common.b64("true")
    if token.get("groups"):
        data["auth-extra-groups"] = kube_common.b64(",".join(token["groups"]))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "type": kubeadm_constants.BOOTSTRAP_TOKEN_SECRET_TYPE,
        "data": data,
    }


def token_from_secret(secret: dict) -> dict | None:
    """BootstrapTokenFromSecret, None for a Secret that is not a valid token."""
    data = {key: _unb64(value) for key, value in (secret.get("data") or {}).items()}
    token_id, token_secret_value = data.get("token-id", ""), data.get("token-secret", "")
    if not kubeadm_api.TOKEN_PATTERN.match(f"{token_id}.{token_secret_value}"):
        return None
    return {
        "token": f"{token_id}.{token_secret_value}",
        "description": data.get("description", ""),
        "expires": data.get("expiration"),
        "usages": sorted(
            key.removeprefix("usage-bootstrap-")
            for key, value in data.items()
            if key.startswith("usage-bootstrap-") and value == "true"
        ),
        "groups": [g for g in data.get("auth-extra-groups", "").split(",") if g],
    }


def _expired(token: dict) -> bool:
    if not token.get("expires"):
        return False
    expires = datetime.datetime.strptime(token["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC
    )
    return expires <= datetime.datetime.now(datetime.UTC)


def list_token_secrets(client: kubeadm_client.Client) -> list[dict]:
    listing = client.get(
        kubeadm_client.secret_path("kube-system")
        + "?fieldSelector=type%3Dbootstrap.kubernetes.io%2Ftoken"
    )
    return [
        s
        for s in listing.get("items") or []
        if s.get("type") == kubeadm_constants.BOOTSTRAP_TOKEN_SECRET_TYPE
    ]


def play_controller_manager(client: kubeadm_client.Client) -> None:
    """tokencleaner, the garbage collector (kubeadm-certs) and bootstrapsigner, once."""
    secrets_listing = client.get(kubeadm_client.secret_path("kube-system")).get("items") or []
    live_uids = set()
    signing = {}
    for secret in secrets_listing:
        if secret.get("type") != kubeadm_constants.BOOTSTRAP_TOKEN_SECRET_TYPE:
            live_uids.add(secret["metadata"].get("uid"))
            continue
        token = token_from_secret(secret)
        if token is not None and _expired(token):
            _delete_quietly(
                client, kubeadm_client.secret_path("kube-system", secret["metadata"]["name"])
            )
            continue
        live_uids.add(secret["metadata"].get("uid"))
        if token is not None and "signing" in token["usages"]:
            token_id, token_secret_value = token["token"].split(".")
            signing[token_id] = token_secret_value
    for secret in secrets_listing:
        owners = secret["metadata"].get("ownerReferences") or []
        if owners and not any(owner.get("uid") in live_uids for owner in owners):
            _delete_quietly(
                client, kubeadm_client.secret_path("kube-system", secret["metadata"]["name"])
            )
    try:
        cluster_info = client.get(
            kubeadm_client.configmap_path("kube-public", kubeadm_constants.CLUSTER_INFO)
        )
    except kubeadm_util.ApiError as err:
        if err.code == 404:
            return
        raise
    data = dict(cluster_info.get("data") or {})
    content = data.get("kubeconfig", "")
    wanted = {
        kubeadm_constants.JWS_PREFIX + token_id: kubeadm_pki.detached_jws(
            content, token_id, secret_value
        )
        for token_id, secret_value in signing.items()
    }
    current = {
        key: value for key, value in data.items() if key.startswith(kubeadm_constants.JWS_PREFIX)
    }
    if current == wanted:
        return
    data = {
        key: value
        for key, value in data.items()
        if not key.startswith(kubeadm_constants.JWS_PREFIX)
    }
    data.update(wanted)
    cluster_info["data"] = data
    client.request(
        "PUT",
        kubeadm_client.configmap_path("kube-public", kubeadm_constants.CLUSTER_INFO),
        cluster_info,
    )


def _delete_quietly(client: kubeadm_client.Client, path: str) -> None:
    try:
        client.delete(path)
    except kubeadm_util.ApiError as err:
        if err.code != 404:
            raise


def create_tokens(client: kubeadm_client.Client, tokens: list[dict]) -> None:
    """tokenphase.CreateNewTokens (UpdateOrCreateTokens without failIfExists)."""
    for token in tokens:
        client.create_or_update(kubeadm_client.secret_path("kube-system"), token_secret(token))


def run_token_create(options) -> None:
    mixed = [
        flag
        for flag, value in (
            ("ttl", options.ttl),
            ("description", options.description),
            ("usages", options.usages),
            ("groups", options.groups),
        )
        if value is not None
    ]
    if options.config and mixed:
        raise kubeadm_util.KubeadmError(
            f"can not mix '--config' with arguments [{' '.join(mixed)}]"
        )
    if options.certificate_key and not options.print_join_command:
        raise kubeadm_util.KubeadmError("cannot use --certificate-key without --print-join-command")
    if options.config:
        config = kubeadm_config.init_configuration(
            kubeadm_config.read_config_file(options.config, kubeadm_util.Node.rootfs)
        )
        token = config["init"]["bootstrapTokens"][0]
    else:
        ttl = options.ttl if options.ttl is not None else "24h0m0s"
        if not kubeadm_api.DURATION.match(ttl) and ttl != "0":
            raise kubeadm_util.KubeadmError(
                f'invalid argument "{ttl}" for "--ttl" flag: time: invalid duration "{ttl}"'
            )
        token = kubeadm_config.default_bootstrap_tokens(
            [
                {
                    "token": options.token or "",
                    "ttl": ttl if kubeadm_util.parse_duration(ttl) > 0 else None,
                    "description": options.description or "",
                    "usages": options.usages.split(",") if options.usages else None,
                    "groups": options.groups.split(",") if options.groups else None,
                }
            ]
        )[0]
        if kubeadm_util.parse_duration(ttl) <= 0:
            token.pop("ttl", None)
        errors = kubeadm_validation.validate_bootstrap_tokens([token])
        if errors:
            raise kubeadm_util.KubeadmError(kubeadm_api.aggregate(errors))
    client = kubeadm_client.admin_client(options)
    create_tokens(client, [token])
    play_controller_manager(client)
    if options.print_join_command:
        config = kubeadm_client.load_kubeconfig(options.kubeconfig or kubeadm_constants.ADMIN_CONF)
        server = config["cluster"]["server"].removeprefix("https://")
        ca_pem = kubeadm_client.pem_from(
            config["cluster"], "certificate-authority-data", "certificate-authority"
        )
        pins = " ".join(
            f"--discovery-token-ca-cert-hash {kubeadm_pki.spki_hash(cert)}"
            for cert in kubeadm_pki.parse_pem_certs(ca_pem)
        )
        command = f"kubeadm join {server} --token {token['token']} {pins} "
        if options.certificate_key:
            command += f"--control-plane --certificate-key {options.certificate_key}"
        kubeadm_util.say(command)
    else:
        kubeadm_util.say(token["token"])


def run_token_list(options) -> None:
    client = kubeadm_client.admin_client(options)
    play_controller_manager(client)
    tokens = [t for t in (token_from_secret(s) for s in list_token_secrets(client)) if t]
    if options.output in ("json", "yaml"):
        for token in tokens:
            document = {
                "kind": "BootstrapToken",
                "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
                "token": token["token"],
            }
            if token["description"]:
                document["description"] = token["description"]
            if token["expires"]:
                document["expires"] = token["expires"]
            if token["usages"]:
                document["usages"] = token["usages"]
            if token["groups"]:
                document["groups"] = token["groups"]
            if options.output == "json":
                kubeadm_util.say(json.dumps(document, indent=4))
            else:
                kubeadm_util.say(yaml.safe_dump(document, default_flow_style=False).rstrip())
        return
    if options.output not in ("", "text"):
        raise kubeadm_util.KubeadmError(
            f"unable to match a printer suitable for the output format "
            f'"{options.output}", allowed formats are: json,jsonpath,'
            "jsonpath-as-json,jsonpath-file,text,yaml"
        )
    rows = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]]
    for token in tokens:
        ttl, expires = "<forever>", "<never>"
        if token["expires"]:
            expires = token["expires"]
            left = (
                datetime.datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(
                    tzinfo=datetime.UTC
                )
                - datetime.datetime.now(datetime.UTC)
            ).total_seconds()
            ttl = kubeadm_util.short_human_duration(left)
        rows.append(
            [
                token["token"],
                ttl,
                expires,
                ",".join(token["usages"]) or "<none>",
                token["description"] or "<none>",
                ",".join(token["groups"]) or "<none>",
            ]
        )
    kubeadm_util.print_table(rows)


def run_token_delete(options) -> None:
    if not options.tokens:
        raise kubeadm_util.KubeadmError(
            "missing subcommand; 'token delete' is missing token of form \"[a-z0-9]{6}\""
        )
    client = kubeadm_client.admin_client(options)
    for value in options.tokens:
        token_id = value
        if not kubeadm_api.TOKEN_ID_PATTERN.match(value):
            match = kubeadm_api.TOKEN_PATTERN.match(value)
            if not match:
                raise kubeadm_util.KubeadmError(
                    "given token didn't match pattern \"^([a-z0-9]{6})\\."
                    '([a-z0-9]{16})$" or "^([a-z0-9]{6})$"'
                )
            token_id = match.group(1)
        try:
            client.delete(kubeadm_client.secret_path("kube-system", f"bootstrap-token-{token_id}"))
        except kubeadm_util.ApiError as err:
            raise kubeadm_util.KubeadmError(
                f'failed to delete bootstrap token "{token_id}": {err}'
            ) from None
        kubeadm_util.say(f'bootstrap token "{token_id}" deleted')
    play_controller_manager(client)
