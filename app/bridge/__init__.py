"""PACS bridge: DICOM in (C-STORE SCP, STOW-RS), inference over HTTP, DICOM results out (SR, SEG, overlay).

Talks to the inference service only over HTTP and never imports torch. See docs/bridge.md.
"""
