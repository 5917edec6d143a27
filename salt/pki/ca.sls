# The etcd CA, on the master's own minion only; its key never leaves it.
pki-ca:
  paas_pki.ca_present:
    - name: etcd CA
