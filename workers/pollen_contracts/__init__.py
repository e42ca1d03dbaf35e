"""The wire contract between the hub and the site agent.

Task names, queue names and payload shapes live here, in one stdlib-only
package that both sides import. Neither Django nor torch may be imported here.
"""
