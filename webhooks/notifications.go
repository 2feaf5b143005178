package webhooks

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/aurum/canary/rollout/notify"
)

// notificationsResponse is the answer of GET /v1/notifications.
type notificationsResponse struct {
	Routes []notify.RouteStatus `json:"routes"`
}

// listNotifications reports each notification route: what waits, what was
// sent, and the last error, so that a route that has been failing since
// midnight shows without reading logs.
func (s *Server) listNotifications(c *gin.Context) {
	resp := notificationsResponse{Routes: []notify.RouteStatus{}}
	if s.notifications != nil {
		resp.Routes = append(resp.Routes, s.notifications.Status()...)
	}
	render(c, http.StatusOK, resp)
}
