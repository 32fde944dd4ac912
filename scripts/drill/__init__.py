"""The fault drill's parts: its machinery (`core`) and its cases by what is bad (`audio`,
`inputs`, `files`); scripts/fault_drill.py runs them."""
