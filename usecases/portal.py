"""Every use case of one process, wired to the same adapters (``Deps``)."""

from __future__ import annotations

from usecases.accounts import Accounts
from usecases.applying import Applying
from usecases.bidding import Bidding, Terms
from usecases.closing import Closing
from usecases.console import Console
from usecases.context import Deps
from usecases.desk import Desk
from usecases.durability import Durability
from usecases.once import ShownOnce
from usecases.opening import Opening
from usecases.operator import Operator
from usecases.operators import OperatorAccounts
from usecases.results import Results
from usecases.sessions import Sessions
from usecases.streaming import Streaming


class Portal:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.terms = Terms(deps)
        self.durability = Durability(deps)
        self.bidding = Bidding(deps, self.terms, self.durability)
        self.opening = Opening(deps, self.terms)
        self.closing = Closing(deps, self.durability)
        self.accounts = Accounts(deps)
        self.applying = Applying(deps, self.opening)
        self.results = Results(deps)
        self.operator = Operator(deps, self.opening)
        self.streaming = Streaming(deps, self.terms, self.results)
        self.sessions = Sessions(deps)
        self.desk = Desk(deps, self.bidding, self.accounts)
        self.operators = OperatorAccounts(deps, self.accounts)
        self.console = Console(deps)
        self.once = ShownOnce(deps)
