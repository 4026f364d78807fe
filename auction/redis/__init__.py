"""The live book on Redis: the only code that knows the key layout (``keys``), the Lua scripts
(``lua/``, loaded by ``scripts``) and the wire format of records and announcements
(``envelope``). ``RedisBook`` implements ``auction.book.Book``, ``RedisBus`` the
``auction.bus.Bus``, ``RedisGuards`` the use cases' ``Guards``."""
