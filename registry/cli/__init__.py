"""Command-line entry points for pyrkt, acbuild, pyrkt-registry and docker2aci: parse, delegate, print."""
