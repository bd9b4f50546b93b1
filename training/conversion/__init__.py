"""Conversion of outside weights: `import_official` maps the released MeDSLIP checkpoint onto this
project's model (medslip-import-official)."""
