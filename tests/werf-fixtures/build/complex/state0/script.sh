#!/bin/bash

echo ${USERNAME} > /username
echo ${PASSWORD} > /password
