"""The model registry in the app: every version (:class:`RegistryView`) and two versions side by side
(:class:`CompareView`)."""
