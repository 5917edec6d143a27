# The certificates this node's roles need, from the CA on the master's minion.
include:
  - pki.certificates
