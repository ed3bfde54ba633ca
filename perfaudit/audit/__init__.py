"""The Phase 4 audit: every optimization switch measured on its own (add-one / drop-one),
capacity per key endpoint, the targets table, findings -> fixes and what is left to do."""
