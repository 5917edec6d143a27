# The baseline every node gets: packages, name, /etc/hosts, sysctls, time sync.
include:
  - common.install
  - common.config
  - common.service
