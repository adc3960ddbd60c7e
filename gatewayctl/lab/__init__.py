"""The demo lab: a gateway, partner peers and services in network namespaces, with real packets."""
