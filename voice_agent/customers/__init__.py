"""Who is calling: caller identity (SIP, signed widget references, verification), the customer directory, wiring."""

from voice_agent.customers.callers import CallerLink, Callers
from voice_agent.customers.directory import Customer, Directory, DirectoryError, open_directory
from voice_agent.customers.identity import check_reference, normalise_number, sign_reference

__all__ = ["CallerLink", "Callers", "Customer", "Directory", "DirectoryError", "check_reference", "normalise_number",
           "open_directory", "sign_reference"]
