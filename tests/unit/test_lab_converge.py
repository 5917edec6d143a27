"""The lab's converge report names what failed, and where."""

from lab import converge


def test_a_failed_state_is_named_with_its_minion_and_comment():
    ret = {
        "comment": "Run failed on minions: etcd2",
        "changes": {
            "ret": {
                "etcd2": {
                    "file_|-etcd-config_|-/etc/x_|-managed": {
                        "result": False,
                        "__id__": "etcd-config",
                        "comment": "Source file not found",
                    }
                }
            }
        },
    }
    assert converge._failures(ret) == ["etcd2: etcd-config: Source file not found"]


def test_a_minion_without_a_return_is_named():
    ret = {
        "comment": "Run failed on minions: etcd3, etcd4\nFailures:\n",
        "changes": {
            "ret": {
                "etcd4": {
                    "x_|-y_|-z_|-w": {"result": False, "__id__": "y", "comment": "broken"},
                }
            }
        },
    }
    assert converge._failures(ret) == [
        "etcd4: y: broken",
        "etcd3: no return (Salt counted it as not responding; see its minion log)",
    ]
