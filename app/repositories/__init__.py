"""Several repositories: the repositories file, routing a ticket to one, each one's own file."""

from app.repositories.config import DEFAULT_NAME, RepositoryConfig, Route
from app.repositories.load import load_repositories
from app.repositories.registry import Repositories, Repository, build_repositories
from app.repositories.routing import Routed, TicketFacts, Unroutable, choose

__all__ = ["DEFAULT_NAME", "Repositories", "Repository", "RepositoryConfig", "Route", "Routed", "TicketFacts",
           "Unroutable", "build_repositories", "choose", "load_repositories"]
