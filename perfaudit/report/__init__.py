"""Renderers: every output is rendered from results (or a comparison), never measured."""
