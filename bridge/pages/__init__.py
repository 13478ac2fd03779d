"""The third line's pages under /ui/: views, action forms, templates and static files."""
