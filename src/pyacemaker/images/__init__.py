"""Container images named by registry reference: parsing, pulling by digest, tool versions,
and the record a campaign keeps of the images it ran with (see docs/cluster.md)."""
