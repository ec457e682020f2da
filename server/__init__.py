"""kefu.server"""
