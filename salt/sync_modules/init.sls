# The platform's custom modules (_modules, _states, _utils, _beacons) on this minion,
# refreshed before any other state renders with them. Changes only when they changed.
sync-modules-all:
  saltutil.sync_all:
    - refresh: True
