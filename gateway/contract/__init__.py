"""What the .proto contract means beyond its types, shared by the client and the
server: job states and their transitions (states), the policy file that becomes
a Policy message (policies), and reading the TOML files people write (toml)."""
