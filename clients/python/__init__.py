"""kefu.client"""
