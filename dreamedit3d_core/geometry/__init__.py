"""Geometry shared by every stage: cameras and projections."""
