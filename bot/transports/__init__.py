"""Platform transports: turn platform events into InboundMessage and send OutboundMessage."""
