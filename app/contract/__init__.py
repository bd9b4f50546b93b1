"""The contract: what the service, the PACS bridge and training share (docs/contracts.md, "Layout").

Pixels (`imaging/`), names (`vocabulary`), graphs (`graphs`), bundles (`bundle_metadata`, `bundle_files`,
`bundle`), HTTP response models (`http`), the JSON log line (`logformat`) and locations (`locations`).
Imports neither torch nor a web framework, so every side can use it; nothing is imported here.
"""
