"""The shipped site YAMLs (local, cluster, pbs, ...), installed with the package so that
``pyacemaker run X.yaml --site local`` works outside the checkout. Load one with
:func:`pyacemaker.config.load_site` by name or path."""
