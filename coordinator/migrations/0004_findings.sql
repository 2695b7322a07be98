CREATE TABLE `findings` (
	`id` text PRIMARY KEY NOT NULL,
	`identity` text NOT NULL,
	`kind` text NOT NULL,
	`severity` text NOT NULL,
	`state` text NOT NULL,
	`service` text,
	`agent_name` text,
	`root_cause` text NOT NULL,
	`summary` text NOT NULL,
	`confidence` real NOT NULL,
	`evidence` text NOT NULL,
	`recommendation` text NOT NULL,
	`since` integer NOT NULL,
	`opened_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`resolved_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `findings_open_identity` ON `findings` (`identity`) WHERE state = 'open';--> statement-breakpoint
CREATE INDEX `findings_state_severity` ON `findings` (`state`,`severity`);--> statement-breakpoint
CREATE INDEX `findings_service` ON `findings` (`service`,`opened_at`);--> statement-breakpoint
CREATE INDEX `findings_opened` ON `findings` (`opened_at`);