"""
etcd's Cluster and Maintenance RPCs that the ``etcd3`` 0.12 client predates, for
``etcd_cluster`` on the nodes (``__utils__``): learners (etcd >= 3.4) are newer than the
client's protocol files, so the few messages that carry ``isLearner`` (member list, add,
promote, remove, status) and ``HashKV`` are declared here, at run time, with only the
fields read or written; a response's header (a message) is kept as raw bytes and read
by ``header``.

:depends: ``protobuf`` (imported on first use) and a ``grpc`` channel, the ``etcd3``
    client's
"""

from __future__ import annotations

# The message classes, declared once per process on first use.
_MESSAGES: dict = {}

_FIELDS = {
    "Member": [
        ("ID", 1, "uint64", False),
        ("name", 2, "string", False),
        ("peerURLs", 3, "string", True),
        ("clientURLs", 4, "string", True),
        ("isLearner", 5, "bool", False),
    ],
    "MemberListRequest": [("linearizable", 1, "bool", False)],
    "MemberListResponse": [("header", 1, "bytes", False), ("members", 2, "Member", True)],
    "MemberAddRequest": [("peerURLs", 1, "string", True), ("isLearner", 2, "bool", False)],
    "MemberAddResponse": [
        ("header", 1, "bytes", False),
        ("member", 2, "Member", False),
        ("members", 3, "Member", True),
    ],
    "MemberPromoteRequest": [("ID", 1, "uint64", False)],
    "MemberRemoveRequest": [("ID", 1, "uint64", False)],
    "StatusRequest": [],
    "StatusResponse": [
        ("header", 1, "bytes", False),
        ("version", 2, "string", False),
        ("dbSize", 3, "int64", False),
        ("leader", 4, "uint64", False),
        ("raftIndex", 5, "uint64", False),
        ("raftTerm", 6, "uint64", False),
        ("raftAppliedIndex", 7, "uint64", False),
        ("errors", 8, "string", True),
        ("dbSizeInUse", 9, "int64", False),
        ("isLearner", 10, "bool", False),
    ],
    "HashKVRequest": [("revision", 1, "int64", False)],
    "HashKVResponse": [
        ("header", 1, "bytes", False),
        ("hash", 2, "uint32", False),
        ("compact_revision", 3, "int64", False),
    ],
}
_METHODS = {
    "MemberList": ("Cluster", "MemberListRequest", "MemberListResponse"),
    "MemberAdd": ("Cluster", "MemberAddRequest", "MemberAddResponse"),
    "MemberPromote": ("Cluster", "MemberPromoteRequest", "MemberListResponse"),
    "MemberRemove": ("Cluster", "MemberRemoveRequest", "MemberListResponse"),
    "Status": ("Maintenance", "StatusRequest", "StatusResponse"),
    "HashKV": ("Maintenance", "HashKVRequest", "HashKVResponse"),
}


def call(client, method: str, timeout: float, **fields):
    """Call ``method`` (a key of ``_METHODS``) with ``fields`` on the ``etcd3`` client's
    channel; the response message. Raises ``grpc.RpcError`` as the client does."""
    service, request, response = _METHODS[method]
    messages = _messages()
    stub = client.channel.unary_unary(
        f"/etcdserverpb.{service}/{method}",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=messages[response].FromString,
    )
    return stub(messages[request](**fields), timeout=timeout)


def member(message) -> dict:
    """A ``Member`` message as data; a member added but not started has no name."""
    return {
        "id": f"{message.ID:x}",
        "name": message.name,
        "peer_urls": list(message.peerURLs),
        "client_urls": list(message.clientURLs),
        "learner": message.isLearner,
        "started": bool(message.name),
    }


def header(raw: bytes) -> dict:
    """A response header's fields by number: cluster_id 1, member_id 2, revision 3,
    raft_term 4."""
    # Each field of ResponseHeader is a varint.
    position, fields = 0, {}
    while position < len(raw):
        key, position = _varint(raw, position)
        if key & 7 != 0:
            break
        fields[key >> 3], position = _varint(raw, position)
    return fields


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def _messages() -> dict:
    if not _MESSAGES:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: PLC0415

        scalar = descriptor_pb2.FieldDescriptorProto
        proto = descriptor_pb2.FileDescriptorProto(
            name="paas_etcd_cluster.proto", package="paas.etcdserverpb", syntax="proto3"
        )
        for message, fields in _FIELDS.items():
            described = proto.message_type.add(name=message)
            for field, number, kind, repeated in fields:
                entry = described.field.add(name=field, number=number)
                entry.label = scalar.LABEL_REPEATED if repeated else scalar.LABEL_OPTIONAL
                if kind in _FIELDS:
                    entry.type = scalar.TYPE_MESSAGE
                    entry.type_name = f".paas.etcdserverpb.{kind}"
                else:
                    entry.type = getattr(scalar, f"TYPE_{kind.upper()}")
        pool = descriptor_pool.DescriptorPool()
        pool.Add(proto)
        _MESSAGES.update(
            {
                name: message_factory.GetMessageClass(
                    pool.FindMessageTypeByName(f"paas.etcdserverpb.{name}")
                )
                for name in _FIELDS
            }
        )
    return _MESSAGES
