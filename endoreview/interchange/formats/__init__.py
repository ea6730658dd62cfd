"""Annotation formats: readers and writers to and from the intermediate representation."""
