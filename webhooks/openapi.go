package webhooks

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/aurum/canary/docs"
)

// openAPIContentType is the media type of the OpenAPI document (RFC 9512).
const openAPIContentType = "application/yaml"

// openAPI serves the OpenAPI 3.0 document of this API, the one in
// docs/openapi.yaml. It needs no token, like /healthz: it holds no data.
func (s *Server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, openAPIContentType, docs.OpenAPI)
}
