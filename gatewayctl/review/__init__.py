"""GitOps review: what access a change of the profiles adds or removes."""
