"""Vector-store adapters for LangChain and LlamaIndex.

They are optional: ``pip install "vecraft[langchain]"`` or ``"vecraft[llamaindex]"``,
then import ``vecraft_client.integrations.langchain`` or ``.llamaindex``. This
package itself imports neither framework.
"""
